"""The support console: ``gunicorn 'workers.console:create_app()'``.

One page per customer: the timeline (every channel, newest first, by cursor, filtered by
channel and status), a phone note, and for a failed email or SMS a corrected address and a
resend through the dispatch task; one page per batch. Server-rendered, usable without
JavaScript. URLs carry customer ids, interaction UUIDs and batch ids, never an address: a search
by address is a POST that redirects to the customer's id.
"""

from __future__ import annotations

import logging

import redis
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from config.settings import Settings, get_settings
from models.enums import ChannelType, InteractionStatus
from models.session import SessionFactory
from services.callbacks import inbox
from services.errors import InvalidInput
from services.records import InteractionRecord
from services.sending import validation
from services.sending.batches import Publisher
from services.sending.pacing import describe
from services.support.lookup import Search, Standing
from services.support.service import (
    NotFound,
    NotQueued,
    ResendConflict,
    ResendKind,
    ResendRefused,
    forced_resends,
    resend_of,
)
from services.support.staff import Permission
from workers import console_display
from workers.console_auth import (
    configure_session,
    current_user,
    enable_oidc,
    form_action_sources,
    recognise_user,
    requires,
    sign_in_pages,
)
from workers.webapp import services, use_container

log = logging.getLogger(__name__)
RESENDABLE_CHANNELS = (ChannelType.EMAIL, ChannelType.SMS)
FILTER_CHANNELS = tuple(ChannelType)
FILTER_STATUSES = tuple(InteractionStatus)
# The form control a service's field name is entered in, where the two differ.
FIELD_INPUTS = {"recipient": "address", "channel": "address"}
# What a form carries besides a note: the form token, a reason, an address, the field names.
FORM_OVERHEAD_BYTES = 16 * 1024
HSTS_SECONDS = 365 * 24 * 60 * 60
# The app's config key saying it is only ever served over HTTPS (production).
HTTPS_ONLY = "INTERACTIONS_HTTPS_ONLY"

pages = Blueprint("console", __name__)


def create_app(
    settings: Settings | None = None,
    sessions: SessionFactory | None = None,
    publisher: Publisher | None = None,
) -> Flask:
    """The console WSGI app; each gunicorn worker builds its own engine on first request."""
    resolved = settings or get_settings()
    app = Flask(__name__, static_url_path="/static")
    use_container(app, settings, sessions=sessions, publisher=publisher)
    configure_session(app, resolved)
    # Forms are small: anything bigger is refused with 413 before a byte of it is read.
    app.config["MAX_CONTENT_LENGTH"] = form_limit(resolved)
    trust_proxies(app, resolved.console_trusted_proxy_hops)
    app.config[HTTPS_ONLY] = resolved.environment == "production"
    app.register_blueprint(sign_in_pages)
    if resolved.console_oidc_enabled:
        enable_oidc(app, resolved)
    app.register_blueprint(pages)
    return app


def form_limit(settings: Settings) -> int:
    """The largest request body the console reads: a longest note, percent-encoded, and more."""
    # Percent-encoding turns one character into at most 12 bytes (four UTF-8 bytes, each %XX).
    return settings.max_note_chars * 12 + FORM_OVERHEAD_BYTES


def trust_proxies(app: Flask, hops: int) -> None:
    """Take the client address and scheme from the ``hops`` proxies in front, when any."""
    if hops:
        # Only the entries the trusted proxies appended count; a client's own are ignored.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]


@pages.record_once
def template_globals(state: BlueprintSetupState) -> None:
    """What the pages' templates call, given to the app the pages are registered on."""
    state.app.jinja_env.globals.update(
        resend_of=resend_of,
        ResendKind=ResendKind,
        error_input=error_input,
        provider_holds=provider_holds,
        rejected_callbacks=rejected_callbacks,
        ChannelType=ChannelType,
        Standing=Standing,
        filter_channels=FILTER_CHANNELS,
        filter_statuses=FILTER_STATUSES,
    )
    console_display.install(state.app)


def provider_holds() -> list[str]:
    """What holds any provider's sends, for a banner: staff then know why a message waits."""
    here = services()
    try:
        paced = [p for p in here.providers.all() if p.credential is not None]
        return [
            f"{provider.name}: {held}"
            for provider in paced
            if provider.credential is not None
            and (held := describe(provider.name, here.pacer.state(provider.credential)))
        ]
    except (ValueError, redis.RedisError):
        return []  # a console without the providers' settings, or Redis away: no banner


def rejected_callbacks() -> int:
    """Provider callbacks settled as rejected, for a banner: receipts that changed nothing."""
    try:
        return inbox.rejected_count(services().sessions)
    except SQLAlchemyError:
        return 0  # the page itself says when the database is away


def error_input(error: object) -> str | None:
    """The id of the form control an error is about, for aria-describedby and the summary."""
    field = getattr(error, "field", None)
    return FIELD_INPUTS.get(field, field) if isinstance(field, str) else None


@pages.after_app_request
def protect(response: Response) -> Response:
    """Every answer's security headers; pages, unlike the stylesheet, are never stored."""
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; form-action {form_action_sources()}; frame-ancestors 'none'; "
        "base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if current_app.config.get(HTTPS_ONLY):
        # Production serves only HTTPS: browsers are told never to try plain HTTP.
        response.headers["Strict-Transport-Security"] = f"max-age={HSTS_SECONDS}"
    if request.endpoint != "static":
        # Pages hold personal data: not kept in caches or the browser's history store.
        response.headers["Cache-Control"] = "no-store"
    return response


@pages.app_errorhandler(HTTPException)
def http_error(exc: HTTPException) -> tuple[str, int]:
    """The error page for an HTTP error, with its status (and who is signed in, if anyone)."""
    code = exc.code or 500
    recognise_user()
    return render_template("console/error.html", code=code, exc=exc), code


@pages.app_errorhandler(SQLAlchemyError)
def database_error(exc: SQLAlchemyError) -> tuple[str, int]:
    """A 503 page for a database failure; the log names the failure's kind, never its data."""
    log.error("console database error: %s", type(exc).__name__)
    return render_template("console/error.html", code=503, exc=None), 503


@pages.get("/healthz")
def healthz() -> tuple[str, int]:
    """Answers while the process serves requests."""
    return "ok", 200


@pages.get("/")
def home() -> str:
    """The search page."""
    return render_template("console/home.html")


@pages.post("/customer")
def open_customer() -> Response | tuple[str, int]:
    """Redirect to the timeline of the customer id typed in."""
    # A POST, so a phone number typed into the wrong box never lands in a URL.
    customer_id = request.form.get("customer_id", "").strip()
    try:
        validation.customer_id(customer_id)
    except InvalidInput as exc:
        page = render_template("console/home.html", error=exc)
        return page, 400
    lookup = services().call_lookup
    if lookup.is_address(customer_id) and not lookup.is_known(customer_id):
        # A phone number typed into the id box: searched as one, so it never becomes a URL.
        return _found(lookup.find(customer_id))
    return redirect(url_for("console.customer", customer_id=customer_id), 303)


@pages.post("/find")
def find() -> Response | tuple[str, int]:
    """The customers an address is on file for or was sent to, by one box whose format says."""
    # The channel is read from the address itself: an "@" is an email, digits a phone number.
    try:
        found = services().call_lookup.find(request.form.get("address", ""))
    except InvalidInput as exc:
        page = render_template("console/home.html", error=exc)
        return page, 400
    return _found(found)


def _found(found: Search) -> Response | tuple[str, int]:
    """The one customer an address search found, or the list of them (404 when none)."""
    if len(found.customers) == 1:
        only = found.customers[0].customer_id
        return redirect(url_for("console.customer", customer_id=only), 303)
    page = render_template(
        "console/found.html", customers=found.customers, channel=found.channel.value
    )
    return page, 200 if found.customers else 404


@pages.get("/customers/<customer_id>")
def customer(customer_id: str) -> tuple[str, int]:
    """A customer's timeline, a page at a time."""
    return customer_page(customer_id)


def customer_page(
    customer_id: str, error: InvalidInput | None = None, note: str = "", status: int = 200
) -> tuple[str, int]:
    """The timeline page, with a note form that failed and its error when there was one."""
    # The console sends nothing itself: dispatch runs in the workers.
    here = services()
    archived = request.args.get("archived") == "1"
    filters = {name: request.args.get(name) or None for name in ("channel", "status")}
    try:
        page = here.ledger_reader.get_history(
            customer_id,
            here.settings.console_page_size,
            cursor=request.args.get("cursor") or None,
            include_archived=archived,
            **filters,
        )
        contact = here.support.contact(customer_id)
        standing = (
            Standing.ON_RECORD
            if page.items or contact.email or contact.phone
            else here.call_lookup.standing(customer_id)
        )
    except InvalidInput as exc:
        abort(400, str(exc))
    on_file = [(ChannelType.EMAIL, contact.email), (ChannelType.SMS, contact.phone)]
    suppressed = here.suppressions.of_addresses((c, a) for c, a in on_file if a)
    hot = here.support.hot_ids([record.id for record in page.items]) if archived else None
    html = render_template(
        "console/customer.html",
        customer_id=customer_id,
        page=page,
        contact=contact,
        archived=archived,
        hot=hot,
        error=error,
        note=note,
        suppressed=suppressed,
        standing=standing,
        hot_months=here.settings.archive_hot_months,
        filters=filters,
    )
    console_display.disclose_timeline(customer_id, contact, page.items)
    return html, status


@pages.post("/customers/<customer_id>/notes")
@requires(Permission.ADD_NOTE)
def add_note(customer_id: str) -> Response | tuple[str, int]:
    """Record a phone note on the customer's timeline."""
    content = request.form.get("content", "")
    here = services()
    try:
        confirmed = request.form.get("confirm_unknown") == "yes"
        asked = content.strip() and not confirmed
        standing = here.call_lookup.standing(customer_id) if asked else None
        if standing is not None and standing.confirm_note:
            # A mistyped id must not quietly gain a history: the note waits for a yes.
            found = (
                f"Nothing for customer {customer_id} was found (the archive could not be read)"
                if standing is Standing.UNCHECKED
                else f"There is no record of customer {customer_id}"
            )
            unknown = InvalidInput(
                "confirm_unknown",
                f"{found}. Check the id with the caller; "
                "tick the box to record the note against this id anyway.",
            )
            return customer_page(customer_id, error=unknown, note=content, status=422)
        here.ledger_reader.add_note(customer_id, content, author=current_user().username)
    except InvalidInput as exc:
        return customer_page(customer_id, error=exc, note=content, status=400)
    flash("Phone note recorded.")
    return redirect(url_for("console.customer", customer_id=customer_id), 303)


@pages.get("/customers/<customer_id>/interactions/<interaction_uuid>")
def interaction(customer_id: str, interaction_uuid: str) -> tuple[str, int]:
    """One interaction's history, with the resend form where one is allowed."""
    return interaction_page(customer_id, interaction_uuid)


def interaction_page(
    customer_id: str,
    interaction_uuid: str,
    error: Exception | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The interaction page, with a resend form that failed and its error when there was one."""
    here = services()
    support = here.support
    try:
        record, events = support.interaction(customer_id, interaction_uuid)
        contact = support.contact(customer_id)
    except (NotFound, InvalidInput):
        abort(404)
    suppressed = here.suppressions.of_interaction(customer_id, interaction_uuid)
    html = render_template(
        "console/interaction.html",
        customer_id=customer_id,
        record=record,
        events=events,
        contact=contact,
        error=error,
        form=form or {},
        seen_resends=forced_resends(events),
        suppressed=suppressed,
    )
    offered = contact if user_may_resend(record) else None
    console_display.disclose_interaction(customer_id, record, offered)
    return html, status


def user_may_resend(record: InteractionRecord) -> bool:
    """Whether the page offers this user the resend form, prefilled from the directory."""
    return record.channel in RESENDABLE_CHANNELS and current_user().may(Permission.RESEND)


@pages.get("/batches/<batch_id>")
def batch(batch_id: str) -> tuple[str, int]:
    """A batch: totals by status, its state, and who started, paused, resumed or cancelled it."""
    try:
        view = services().call_lookup.batch(batch_id)
    except InvalidInput:
        abort(404)
    return render_template("console/batch.html", view=view), 200


@pages.post("/customers/<customer_id>/interactions/<interaction_uuid>/resend")
@requires(Permission.RESEND)
def resend(customer_id: str, interaction_uuid: str) -> Response | tuple[str, int]:
    """Queue a resend, to a corrected address when one was given."""
    form = {name: request.form.get(name, "") for name in ("address", "reason")}
    try:
        result = services().support.resend(
            customer_id,
            interaction_uuid,
            current_user().username,
            form["address"] or None,
            form["reason"] or None,
            _count(request.form.get("seen_resends", "")),
        )
    except NotFound:
        abort(404)
    except ResendConflict as exc:
        return interaction_page(customer_id, interaction_uuid, exc, form, 409)
    except (InvalidInput, ResendRefused) as exc:
        return interaction_page(customer_id, interaction_uuid, exc, form, 400)
    except NotQueued as exc:
        cause = type(exc.__cause__).__name__
        log.error(
            "resend recorded but not queued: %s",
            cause,
            extra={"idempotency_key": exc.idempotency_key},
        )
        error = RuntimeError("The resend was recorded but could not be queued. Try again.")
        return interaction_page(customer_id, interaction_uuid, error, form, 503)
    if result.kind is ResendKind.RETRY:
        flash("Resend queued: a new attempt on this message.")
    else:
        flash(f"Resend queued as a new message, {result.idempotency_key}.")
    return redirect(url_for("console.customer", customer_id=customer_id), 303)


def _count(value: str) -> int | None:
    """A count a form carried back, or None when it carried none."""
    return int(value) if value.isdigit() and len(value) < 10 else None


@pages.post("/customers/<customer_id>/interactions/<interaction_uuid>/lift-suppression")
@requires(Permission.RESEND)
def lift_suppression(customer_id: str, interaction_uuid: str) -> Response | tuple[str, int]:
    """Lift the suppression of the address an interaction went to, with who and why."""
    form = {"lift_reason": request.form.get("lift_reason", "")}
    try:
        lifted = services().suppressions.lift_for_interaction(
            customer_id, interaction_uuid, current_user().username, form["lift_reason"]
        )
    except InvalidInput as exc:
        problem = InvalidInput("lift_reason", exc.message)
        return interaction_page(customer_id, interaction_uuid, problem, form, 400)
    flash(
        "Suppression lifted: messages go to this address again."
        if lifted
        else "This address was not suppressed."
    )
    return redirect(
        url_for("console.interaction", customer_id=customer_id, interaction_uuid=interaction_uuid),
        303,
    )
