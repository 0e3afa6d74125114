"""Processes of the service: the Celery app, the webhook app, the command line and their helpers."""
