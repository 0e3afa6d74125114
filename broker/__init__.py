"""Celery plumbing that is not a task: app factory, task names, publishing, argument redaction."""
