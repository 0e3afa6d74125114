"""Retention: moving expired interactions to a verified cold archive, and reading them back."""
