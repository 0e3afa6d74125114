"""What every web app of the service shares: its container, found from the request's app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app

from config.settings import Settings
from services.container import Container, container

EXTENSION = "interactions"


def use_container(app: Flask, settings: Settings | None = None, **given: Any) -> None:
    """Serve ``app`` from the process container, or from one of its own when given parts."""
    parts = {name: part for name, part in given.items() if part is not None}
    if settings is None and not parts:
        provide: Callable[[], Container] = container
    else:
        own = Container(settings or container().settings, **parts)
        provide = lambda: own  # noqa: E731 - the same shape as the process container's getter
    app.extensions[EXTENSION] = provide


def services() -> Container:
    """The container behind the current request's app."""
    provide: Callable[[], Container] = current_app.extensions[EXTENSION]
    return provide()
