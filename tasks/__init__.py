"""Celery tasks: thin shells over the service layer."""
