"""Signing staff in and out of the console, and the checks every request passes first.

Sessions live in the database (services.support.sessions); Flask's signed cookie (HttpOnly,
SameSite=Lax, Secure in production) carries only the session's random token and the form
token (and, while a provider sign-in is under way, its state, nonce and PKCE verifier; a
provider's id_token stays in the database). Every request resumes the session from the
database, so sign-out, the idle timeout and the absolute limit hold whatever cookie is
replayed; a local user's roles are read from the user list each time, so removing a user or
a role takes effect at once. Every POST must carry the session's form token, compared in
constant time.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import ParamSpec, TypeVar
from urllib.parse import urljoin, urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from config.settings import Settings
from services.support.sessions import StaffSessions
from services.support.sign_in_throttle import Refusal
from services.support.staff import Permission, StaffUser, same_token
from workers.console_oidc import OidcClient, OidcError
from workers.webapp import services

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
# Reachable signed out: the sign-in page, the health check and the stylesheet.
OPEN_ENDPOINTS = frozenset(
    {"auth.login", "auth.sign_in", "oidc.start", "oidc.callback", "console.healthz", "static"}
)
OIDC_CLIENT = "console_oidc_client"
# The app's config key holding the provider's origin, where the sign-out form ends up.
PROVIDER_ORIGIN = "INTERACTIONS_OIDC_PROVIDER_ORIGIN"

sign_in_pages = Blueprint("auth", __name__)
oidc_sign_in = Blueprint("oidc", __name__)


class ConsoleMisconfigured(RuntimeError):
    """The console cannot start as configured; the message says what to set."""


def configure_session(app: Flask, settings: Settings) -> None:
    """The cookie's secret and flags; refuse to start without what sign-in needs."""
    if settings.console_secret_key is None:
        raise ConsoleMisconfigured(
            "the console needs INTERACTIONS_CONSOLE_SECRET_KEY to sign its sessions: "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    key = settings.console_secret_key.get_secret_value()
    if len(key) < 32:
        raise ConsoleMisconfigured("INTERACTIONS_CONSOLE_SECRET_KEY must be 32 characters or more")
    if (
        settings.console_users
        and settings.environment == "production"
        and not settings.console_allow_local_users_in_production
    ):
        raise ConsoleMisconfigured(
            "INTERACTIONS_CONSOLE_USERS lists local users, which production refuses: sign staff "
            "in through an OpenID Connect provider, or set "
            "INTERACTIONS_CONSOLE_ALLOW_LOCAL_USERS_IN_PRODUCTION=true where none exists"
        )
    if not settings.console_users and not settings.console_oidc_enabled:
        raise ConsoleMisconfigured(
            "INTERACTIONS_CONSOLE_USERS is empty and no OIDC provider is configured, so no one "
            "could sign in: `interactions console add-user NAME --role viewer` makes an entry"
        )
    secure = settings.console_cookie_secure
    if secure is None:
        secure = settings.environment == "production"
    if settings.environment == "production" and not secure:
        raise ConsoleMisconfigured("in production the session cookie must be Secure (HTTPS only)")
    app.secret_key = key
    app.config.update(
        SESSION_COOKIE_NAME="interactions_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.console_session_minutes),
    )


def csrf_token() -> str:
    """This session's form token, made on first use."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def current_user() -> StaffUser:
    """The signed-in user of this request (the checks before it guarantee one)."""
    user: StaffUser = g.user
    return user


def recognise_user() -> None:
    """Resume this browser's session for a page the checks refused before they reached it.

    A stale form token (400) or an oversized form (413) is refused before the session is
    looked up; the error page still says who is signed in and offers sign-out.
    """
    token = session.get("sid")
    if g.get("user") is not None or not isinstance(token, str):
        return
    try:
        g.user = services().staff_sessions.resume(token)
    except SQLAlchemyError:
        log.error("console session not resumed for an error page: the database is away")


def requires(permission: Permission) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Answer 403 unless the signed-in user's roles grant ``permission``."""

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            if not current_user().may(permission):
                abort(403)
            return view(*args, **kwargs)

        return checked

    return decorate


@sign_in_pages.before_app_request
def check_request() -> Response | None:
    """Refuse a POST without this session's form token; send the signed-out to sign in."""
    if request.method == "POST" and not same_token(
        request.form.get("csrf_token"), session.get("csrf", "")
    ):
        abort(400, "The form had expired or did not come from this console. Try again.")
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    token = session.get("sid")
    user = services().staff_sessions.resume(token) if isinstance(token, str) else None
    if user is None:
        session.pop("sid", None)
        return redirect(url_for("auth.login"), 303)
    g.user = user
    return None


@sign_in_pages.app_context_processor
def template_values() -> dict[str, object]:
    """What every page's template reads: the form token, the user and the ways to sign in."""
    settings = services().settings
    return {
        "csrf_token": csrf_token,
        "user": g.get("user"),
        "Permission": Permission,
        "oidc_enabled": settings.console_oidc_enabled,
        "local_users": bool(settings.console_users),
    }


@sign_in_pages.get("/login")
def login() -> str:
    """The sign-in page."""
    return render_template("console/login.html")


@sign_in_pages.post("/login")
def sign_in() -> Response | tuple[str, int, dict[str, str]] | tuple[str, int]:
    """Sign a local user in by name and password, unless the name or address must wait."""
    here = services()
    name, address = request.form.get("username", ""), request.remote_addr or ""
    # Reserved before the password is checked, so concurrent guesses cannot outrun the count.
    attempt = here.sign_in_throttle.reserve(name, address)
    if isinstance(attempt, Refusal):
        log.warning("console sign-in refused: too many failures for the name or address")
        return refused(attempt)
    user = here.staff_directory.authenticate(name, request.form.get("password", ""))
    if user is None:
        log.warning("console sign-in refused")
        page = render_template("console/login.html", error="Wrong user name or password.")
        return page, 401
    here.sign_in_throttle.succeeded(attempt)
    start_session(here.staff_sessions, user)
    return redirect(url_for("console.home"), 303)


def refused(refusal: Refusal) -> tuple[str, int, dict[str, str]]:
    """The 429 sign-in page, saying how long to wait, with ``Retry-After``."""
    seconds = max(1, math.ceil(refusal.retry_after.total_seconds()))
    error = (
        f"Too many failed sign-ins. Wait {wait_in_words(seconds)} and try again, "
        "or ask the console's administrator to check your account."
    )
    page = render_template("console/login.html", error=error)
    return page, 429, {"Retry-After": str(seconds)}


def wait_in_words(seconds: int) -> str:
    """A wait as people say it: seconds under two minutes, whole minutes beyond."""
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


@sign_in_pages.post("/logout")
def logout() -> Response:
    """End this browser's session, then the provider's if the provider signed the user in."""
    id_token = end_session(services().staff_sessions)
    if id_token is not None and OIDC_CLIENT in current_app.extensions:
        # Otherwise the provider, still signed in, would sign the user straight back in.
        target = oidc_client().end_session_url(id_token, post_logout_redirect_uri())
        if target is not None:
            return redirect(target, 303)
    return redirect(url_for("auth.login"), 303)


def start_session(store: StaffSessions, user: StaffUser, id_token: str | None = None) -> None:
    """A new session for ``user`` under a new token; one this browser held before is ended."""
    end_session(store)
    session.permanent = True
    session["sid"] = store.open(user, id_token)
    csrf_token()


def end_session(store: StaffSessions) -> str | None:
    """End this browser's session in the database and clear its cookie; its id_token if any."""
    token = session.get("sid")
    id_token = store.end(token) if isinstance(token, str) else None
    session.clear()
    return id_token


def enable_oidc(app: Flask, settings: Settings) -> None:
    """Offer sign-in through the configured OpenID Connect provider on ``app``."""
    # One client per app: it keeps the discovery document and keys it read, for a while.
    app.extensions[OIDC_CLIENT] = OidcClient(settings)
    issuer = urlsplit(settings.console_oidc_issuer or "")
    app.config[PROVIDER_ORIGIN] = f"{issuer.scheme}://{issuer.netloc}"
    app.register_blueprint(oidc_sign_in)


def form_action_sources() -> str:
    """Where the console's forms may lead (CSP form-action): itself, and the provider."""
    # Browsers hold a form's redirects to form-action too, and sign-out ends at the provider.
    # The end-session endpoint may sit on another origin than the issuer (it is the
    # provider's choice); its origin is added once the discovery document has been read.
    origin = current_app.config.get(PROVIDER_ORIGIN)
    if not origin:
        return "'self'"
    sources = dict.fromkeys(["'self'", origin, oidc_client().end_session_origin() or origin])
    return " ".join(sources)


def oidc_client() -> OidcClient:
    """The current app's client of the sign-in provider."""
    client: OidcClient = current_app.extensions[OIDC_CLIENT]
    return client


def redirect_uri() -> str:
    """Where the provider sends the browser back to: as configured, or this console's own."""
    configured = services().settings.console_oidc_redirect_url
    return configured or url_for("oidc.callback", _external=True)


def post_logout_redirect_uri() -> str:
    """Where the provider sends the browser after sign-out: this console's sign-in page."""
    configured = services().settings.console_oidc_redirect_url
    # On the host the configured callback names, which a proxy may hide from the request.
    return (
        urljoin(configured, url_for("auth.login"))
        if configured
        else url_for("auth.login", _external=True)
    )


@oidc_sign_in.get("/login/oidc")
def start() -> Response:
    """Send the browser to the provider, keeping the sign-in's secrets in the session."""
    try:
        return oidc_client().start(redirect_uri())
    except OidcError as exc:
        abort(503, str(exc))


@oidc_sign_in.get("/login/oidc/callback")
def callback() -> Response | tuple[str, int]:
    """Sign in the user the provider vouches for, if it grants them a console role."""
    try:
        signed_in = oidc_client().finish()
    except OidcError as exc:
        log.warning("console sign-in through the provider refused: %s", exc)
        return render_template("console/login.html", error=str(exc)), 401
    if not signed_in.user.roles:
        log.warning("console sign-in refused: the provider granted no console role")
        abort(403)
    start_session(services().staff_sessions, signed_in.user, signed_in.id_token)
    return redirect(url_for("console.home"), 303)
