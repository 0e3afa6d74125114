"""A Flask app whose callback route does nothing: the baseline of bench.webhooks."""

from __future__ import annotations

from flask import Flask


def create_app() -> Flask:
    """The webhook's routes with nothing behind them: ``gunicorn 'bench.bare_app:create_app()'``."""
    app = Flask(__name__)

    @app.post("/callbacks/notify")
    def notify_callback() -> tuple[str, int]:
        return "", 202

    @app.get("/healthz")
    def healthz() -> tuple[str, int]:
        return "ok", 200

    return app
