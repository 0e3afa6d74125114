"""Settings, Celery configuration and logging for the interaction service."""

from config.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
