"""The HTTP API: ``gunicorn 'workers.api:create_app()'``, versioned under ``/v1``.

Send one message (recorded PENDING, sent by the workers), upload and steer batches, read a
customer's timeline and an interaction's history, and record notes. Every answer that is not
a success is RFC 9457 problem+json naming the field at fault; no stack trace, and nothing a
caller sent (an address, a body) ever goes to a log line or a URL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any, TypeVar

from flask import Blueprint, Flask, Response, jsonify, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from config.settings import Settings
from models.enums import InteractionStatus
from services.clients.identity import Scope
from services.errors import InvalidInput
from services.records import InteractionRecord
from services.sending.acceptance import KeyReused
from services.sending.batch_control import change_state
from services.sending.batch_status import batch_status
from services.sending.batches import RecipientRow, Rejection, read_csv
from services.sending.parking import release_batch
from services.support.service import EventRecord, NotFound
from workers import api_models as m
from workers.api_openapi import document
from workers.api_operations import (
    ApiProblem,
    Parameter,
    caller,
    operation,
    problem_response,
)
from workers.webapp import services, use_container

log = logging.getLogger(__name__)
Model = TypeVar("Model", bound=BaseModel)
api = Blueprint("api", __name__)

CSV = "text/csv"
JSON_LINES = ("application/x-ndjson", "application/jsonl")
CUSTOMER = Parameter("customer_id", "path", {"type": "string", "pattern": m.CUSTOMER_ID})
BATCH = Parameter("batch_id", "path", {"type": "string", "pattern": m.BATCH_ID})
IDEMPOTENCY = Parameter(
    "Idempotency-Key",
    "header",
    {"type": "string", "minLength": 1, "maxLength": 255},
    description="The message's idempotency key (or idempotency_key in the body).",
)


def create_app(settings: Settings | None = None, **parts: Any) -> Flask:
    """The API's WSGI app; ``parts`` replace container parts (tests)."""
    app = Flask(__name__)
    use_container(app, settings, **parts)
    app.register_blueprint(api)
    return app


# ---- answers


def _json(model: BaseModel, status: int = 200) -> tuple[Response, int]:
    return Response(model.model_dump_json(), mimetype="application/json"), status


def _field_problem(field: str, detail: str, status: int = 422) -> ApiProblem:
    return ApiProblem(status, "Invalid field", detail, errors=[{"field": field, "detail": detail}])


def _read_body() -> bytes:
    """The raw JSON body, refusing more than the configured limit whatever is declared."""
    limit = services().settings.api_max_body_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        raise ApiProblem(413, "Body too large", f"the body is over {limit} bytes")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise ApiProblem(413, "Body too large", f"the body is over {limit} bytes")
    return body


def _parsed(model: type[Model]) -> Model:
    """The JSON body as ``model``; 400 for what is not JSON, 422 naming each bad field."""
    body = _read_body()
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False, include_context=False)
        if any(error["type"] == "json_invalid" for error in errors):
            raise ApiProblem(400, "Malformed JSON", "the body is not a JSON document") from None
        fields = [
            {"field": ".".join(str(p) for p in error["loc"]) or "body", "detail": error["msg"]}
            for error in errors
        ]
        raise ApiProblem(
            422, "Invalid fields", "; ".join(f["field"] for f in fields), errors=fields
        ) from None


def _query(model: type[Model]) -> Model:
    """The query string as ``model``; 422 naming each bad parameter."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False, include_context=False)
        fields = [
            {"field": ".".join(str(p) for p in error["loc"]), "detail": error["msg"]}
            for error in errors
        ]
        raise ApiProblem(
            422, "Invalid parameters", "; ".join(f["field"] for f in fields), errors=fields
        ) from None


def _interaction(record: InteractionRecord) -> dict[str, Any]:
    return {
        "interaction_uuid": record.interaction_uuid,
        "customer_id": record.customer_id,
        "channel": record.channel.value,
        "status": record.status.value,
        "template_key": record.template_key,
        "batch_id": record.batch_id,
        "attempt_count": record.attempt_count,
        "provider": record.provider,
        "failure_reason": record.failure_reason,
        "author": record.author,
        "created_at": record.created_at,
        "sent_at": record.sent_at,
        "delivered_at": record.delivered_at,
        "opened_at": record.opened_at,
        "failed_at": record.failed_at,
    }


def _event(event: EventRecord) -> m.Event:
    return m.Event(
        kind=event.kind.value,
        from_status=event.from_status.value if event.from_status else None,
        to_status=event.to_status.value if event.to_status else None,
        outcome=event.outcome,
        source=event.source,
        actor=event.actor,
        attempt=event.attempt,
        provider=event.provider,
        occurred_at=event.occurred_at,
        detail=event.detail,
    )


# ---- messages


@api.post("/v1/messages")
@operation(
    "Send one message (through the workers)",
    Scope.SEND,
    {202: m.MessageAccepted, 200: m.MessageAccepted, 400: None, 413: None, 422: None},
    body=m.MessageRequest,
    parameters=(IDEMPOTENCY,),
    tag="messages",
)
def post_message() -> tuple[Response, int]:
    """Record the message PENDING and queue one dispatch; the same key again is the same one."""
    given = _parsed(m.MessageRequest)
    key = request.headers.get("Idempotency-Key") or given.idempotency_key
    if not key:
        raise _field_problem("idempotency_key", "send an Idempotency-Key header or the field")
    if given.idempotency_key and key != given.idempotency_key:
        raise _field_problem("idempotency_key", "the header and the body name different keys")
    try:
        accepted = services().acceptance.accept(
            given.customer_id,
            given.channel,
            given.template_key,
            given.payload,
            key,
            given.recipient,
            caller().client,
        )
    except KeyReused:
        raise ApiProblem(
            422,
            "Idempotency key reused",
            "this key was already used for another customer or channel",
            errors=[{"field": "idempotency_key", "detail": "already used for another request"}],
        ) from None
    except InvalidInput as exc:
        raise _field_problem(exc.field, exc.message) from None
    this = f"/v1/interactions/{accepted.interaction_uuid}"
    answer = m.MessageAccepted(
        interaction_uuid=accepted.interaction_uuid,
        idempotency_key=accepted.idempotency_key,
        customer_id=accepted.customer_id,
        channel=accepted.channel.value,
        status=accepted.status.value,
        links=m.Links(self=this, timeline=f"/v1/customers/{accepted.customer_id}/interactions"),
    )
    response, status = _json(answer, 202 if accepted.created else 200)
    response.headers["Location"] = this
    return response, status


# ---- reading


class TimelineQuery(BaseModel):
    """The timeline's query parameters."""

    limit: int = 50
    cursor: str | None = None
    channel: m.AnyChannel | None = None
    status: m.Status | None = None
    include_archived: bool = False


@api.get("/v1/customers/<customer_id>/interactions")
@operation(
    "A customer's timeline, newest first",
    Scope.READ,
    {200: m.Timeline, 422: None},
    parameters=(
        CUSTOMER,
        Parameter("limit", "query", {"type": "integer", "minimum": 1, "default": 50}),
        Parameter("cursor", "query", {"type": "string"}),
        Parameter("channel", "query", {"enum": ["email", "sms", "phone", "system"]}),
        Parameter("status", "query", {"enum": [s.value for s in InteractionStatus]}),
        Parameter("include_archived", "query", {"type": "boolean", "default": False}),
    ),
    tag="timelines",
)
def timeline(customer_id: str) -> tuple[Response, int]:
    """One keyset page of the customer's interactions."""
    asked = _query(TimelineQuery)
    try:
        page = services().ledger_reader.get_history(
            customer_id,
            asked.limit,
            cursor=asked.cursor,
            channel=asked.channel,
            status=asked.status,
            include_archived=asked.include_archived,
        )
    except InvalidInput as exc:
        raise _field_problem(exc.field, exc.message) from None
    here = f"/v1/customers/{customer_id}/interactions"
    following = None
    if page.next_cursor:
        following = f"{here}?limit={asked.limit}&cursor={page.next_cursor}"
    answer = m.Timeline(
        items=[m.Interaction(**_interaction(record)) for record in page.items],
        next_cursor=page.next_cursor,
        links=m.Links(self=here, next=following),
    )
    return _json(answer)


@api.get("/v1/interactions/<interaction_uuid>")
@operation(
    "One interaction and its history",
    Scope.READ,
    {200: m.InteractionDetail, 404: None},
    parameters=(Parameter("interaction_uuid", "path", {"type": "string", "format": "uuid"}),),
    tag="timelines",
)
def interaction(interaction_uuid: str) -> tuple[Response, int]:
    """The interaction and every event of its history, oldest first."""
    try:
        record, events = services().support.interaction_by_uuid(interaction_uuid)
    except NotFound:
        raise ApiProblem(404, "Not found", "no interaction has this uuid") from None
    answer = m.InteractionDetail(
        **_interaction(record),
        body_content=record.body_content if record.author else None,
        events=[_event(event) for event in events],
    )
    return _json(answer)


@api.post("/v1/customers/<customer_id>/notes")
@operation(
    "Record a phone call or notation; its author is the calling client",
    Scope.NOTES,
    {201: m.Interaction, 400: None, 413: None, 422: None},
    body=m.NoteRequest,
    parameters=(CUSTOMER,),
    tag="timelines",
)
def post_note(customer_id: str) -> tuple[Response, int]:
    """The note as the timeline now shows it."""
    given = _parsed(m.NoteRequest)
    try:
        record = services().ledger_reader.add_note(
            customer_id, given.content, author=caller().client, occurred_at=given.occurred_at
        )
    except InvalidInput as exc:
        raise _field_problem(exc.field, exc.message) from None
    response, status = _json(m.Interaction(**_interaction(record)), 201)
    response.headers["Location"] = f"/v1/interactions/{record.interaction_uuid}"
    return response, status


# ---- batches


class BatchQuery(BaseModel):
    """The batch upload's query parameters."""

    batch_id: str
    channel: m.SentChannel
    template_key: str
    not_before: datetime | None = None


class RowLimitReached(Exception):
    """The upload has more rows than the configured limit."""


def _limited(rows: Iterator[RecipientRow | Rejection], limit: int) -> Iterator[Any]:
    """The rows, stopping the upload at ``limit``."""
    for count, row in enumerate(rows, start=1):
        if count > limit:
            raise RowLimitReached
        yield row


def read_json_lines(stream: IO[bytes]) -> Iterator[RecipientRow | Rejection]:
    """Stream JSON Lines of ``customer_id``, ``recipient``, ``payload``, ``idempotency_key``."""
    for line, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            yield Rejection(line, "not a JSON object")
            continue
        if not isinstance(item, dict):
            yield Rejection(line, "not a JSON object")
            continue
        customer, recipient, key = (
            item.get("customer_id"),
            item.get("recipient"),
            item.get("idempotency_key"),
        )
        payload = item.get("payload", {})
        unknown = set(item) - {"customer_id", "recipient", "payload", "idempotency_key"}
        if unknown:
            yield Rejection(line, f"unknown fields: {', '.join(sorted(unknown))[:200]}")
            continue
        if not isinstance(customer, str) or not isinstance(payload, dict):
            yield Rejection(line, "customer_id must be text and payload an object")
            continue
        if not isinstance(recipient, str | None) or not isinstance(key, str | None):
            yield Rejection(line, "recipient and idempotency_key must be text")
            continue
        yield RecipientRow(line, customer, recipient or None, payload, key)


@api.post("/v1/batches")
@operation(
    "Upload a batch (JSON Lines or CSV, streamed); the same batch again resumes it",
    Scope.SEND,
    {200: m.BatchReport, 413: None, 415: None, 422: None},
    raw_body=(JSON_LINES[0], CSV),
    parameters=(
        Parameter("batch_id", "query", {"type": "string", "pattern": m.BATCH_ID}, required=True),
        Parameter("channel", "query", {"enum": ["email", "sms"]}, required=True),
        Parameter(
            "template_key", "query", {"type": "string", "pattern": m.TEMPLATE_KEY}, required=True
        ),
        Parameter("not_before", "query", {"type": "string", "format": "date-time"}),
    ),
    tag="batches",
)
def post_batch() -> tuple[Response, int]:
    """Enqueue every row not already sent; rejected rows come back with their line numbers."""
    asked = _query(BatchQuery)
    kind = request.mimetype
    stream: IO[bytes] = request.stream
    if kind == CSV:
        rows: Iterator[RecipientRow | Rejection] = read_csv(stream)
    elif kind in JSON_LINES:
        rows = read_json_lines(stream)
    else:
        raise ApiProblem(415, "Unsupported media type", f"send {JSON_LINES[0]} or {CSV}")
    here = services()
    limit = here.settings.api_batch_max_rows
    try:
        report = here.batch_producer.run(
            asked.batch_id,
            asked.channel,
            asked.template_key,
            _limited(rows, limit),
            source=f"api:{caller().client}",
            not_before=asked.not_before,
            started_by=caller().client,
        )
    except InvalidInput as exc:
        raise _field_problem(exc.field, exc.message) from None
    except RowLimitReached:
        raise ApiProblem(
            413,
            "Too many rows",
            f"the upload has more than {limit} rows; those read were enqueued, "
            "the rest belong in another batch",
        ) from None
    answer = m.BatchReport(
        batch_id=report.batch_id,
        rows=report.rows,
        enqueued=report.enqueued,
        already_sent=report.already_sent,
        duplicates=report.duplicates,
        rejected=report.rejected,
        rejections=[m.RejectedRow(line=r.line, reason=r.reason) for r in report.rejections],
        links=m.Links(self=f"/v1/batches/{report.batch_id}"),
    )
    return _json(answer)


@api.get("/v1/batches/<batch_id>")
@operation(
    "Where a batch stands",
    Scope.READ,
    {200: m.BatchState, 404: None},
    parameters=(BATCH,),
    tag="batches",
)
def get_batch(batch_id: str) -> tuple[Response, int]:
    """Totals by status, progress, and whether it is paused, cancelled or scheduled."""
    here = services()
    try:
        status = batch_status(here.sessions, batch_id, datetime.now().astimezone())
    except InvalidInput:
        raise ApiProblem(404, "Not found", "no batch with this id has been run") from None
    steering = here.batch_gate.steering(batch_id)
    assert steering is not None
    now = datetime.now().astimezone()
    answer = m.BatchState(
        batch_id=status.batch_id,
        channel=status.channel,
        template_key=status.template_key,
        state=steering.state.value,
        scheduled=steering.not_before is not None and steering.not_before > now,
        not_before=steering.not_before,
        runs=status.runs,
        rows=status.rows,
        rejected=status.rejected,
        expected=status.expected,
        by_status={s.value: n for s, n in status.by_status.items()},
        finished=status.finished,
        progress=status.progress,
        in_flight=status.in_flight,
        held=status.held,
        released=status.released,
        outcome_unknown=status.outcome_unknown,
        started_by=status.started_by,
    )
    return _json(answer)


def _steer(batch_id: str, action: str) -> tuple[Response, int]:
    """Pause, resume or cancel, recorded with the client as its actor."""
    given = _parsed(m.BatchControlRequest)
    here = services()
    try:
        change = change_state(
            here.sessions, here.batch_gate, batch_id, action, caller().client, given.reason
        )
    except InvalidInput as exc:
        status = 404 if "has been run" in exc.message else 409
        raise ApiProblem(status, "Batch not steerable", exc.message) from None
    released = None
    if change.changed and action in {"resume", "cancel"} and here.parking is not None:
        # Parked messages go out on resume, and are dropped by the gate on cancel.
        released = release_batch(here.parking, batch_id, here.batch_gate, here.publisher)
    answer = m.BatchChange(
        batch_id=batch_id,
        before=change.before.value,
        after=change.after.value,
        changed=change.changed,
        released_parked=released,
    )
    return _json(answer)


_CONTROL = {200: m.BatchChange, 400: None, 404: None, 409: None, 422: None}


@api.post("/v1/batches/<batch_id>/pause")
@operation("Pause a batch", Scope.SEND, _CONTROL, m.BatchControlRequest, (), (BATCH,), "batches")
def pause_batch(batch_id: str) -> tuple[Response, int]:
    """Hold the batch's messages (parked) until it is resumed."""
    return _steer(batch_id, "pause")


@api.post("/v1/batches/<batch_id>/resume")
@operation("Resume a batch", Scope.SEND, _CONTROL, m.BatchControlRequest, (), (BATCH,), "batches")
def resume_batch(batch_id: str) -> tuple[Response, int]:
    """Send the batch's held messages again."""
    return _steer(batch_id, "resume")


@api.post("/v1/batches/<batch_id>/cancel")
@operation("Cancel a batch", Scope.SEND, _CONTROL, m.BatchControlRequest, (), (BATCH,), "batches")
def cancel_batch(batch_id: str) -> tuple[Response, int]:
    """Drop what was not claimed; claims under way finish."""
    return _steer(batch_id, "cancel")


# ---- the document, health and errors


@api.get("/v1/openapi.json")
@operation("This document", None, {200: None}, tag="meta")
def openapi() -> Response:
    """The OpenAPI 3.1 document, generated from the views."""
    from flask import current_app  # noqa: PLC0415 - only this view needs the app itself

    return jsonify(document(current_app))


@api.get("/v1/docs")
def docs_page() -> Response:
    """A browsable page over the document (the page's script is fetched by the browser)."""
    return Response(DOCS_PAGE, mimetype="text/html")


@api.get("/healthz")
@operation("Whether the process answers", None, {200: m.Health}, tag="meta")
def healthz() -> tuple[Response, int]:
    """Whether the process answers."""
    return _json(m.Health(status="ok"))


@api.app_errorhandler(ApiProblem)
def answer_problem(problem: ApiProblem) -> Response:
    """A raised problem, in its shape."""
    return problem_response(problem)


@api.app_errorhandler(HTTPException)
def http_problem(exc: HTTPException) -> Response:
    """Flask's own refusals (unknown path, method) in the same shape."""
    code = exc.code or 500
    return problem_response(ApiProblem(code, exc.name))


@api.app_errorhandler(Exception)
def unexpected(exc: Exception) -> Response:
    """A 500 with no detail; the trace goes to the log only."""
    log.exception("api request failed unexpectedly")
    return problem_response(ApiProblem(500, "Internal error"))


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Interaction Service API</title>
<link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/v1/openapi.json", dom_id: "#ui"});</script>
</body></html>
"""
