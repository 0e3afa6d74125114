"""Where the API's CPU goes, part by part, in this process, with no profiler in the way.

    .venv/bin/python -m bench.api_parts        # on the bench database and Redis db of bench.api

Each part is timed alone over the same inputs (process CPU per call, best of three rounds):
for ``POST /v1/messages`` the key check, the rate count, the two in one Redis script (the
key's record cached), the checks, the ledger write and the publish, and the whole request
through Flask's test client beside a bare route's; for a batch
row the JSON Lines parse, the checks, the record (JSON and sealing) and the envelope.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask

from bench.api import BROKER_URL, CHANNEL, DB_URL, TEMPLATE, json_lines, message_requests
from devtools.keys import use_test_keys

ROUNDS = 3


def cpu_us(calls: int, work: Callable[[], Any]) -> float:
    """The least process CPU per call, in microseconds, over a few rounds of ``work``."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return 1e6 * best / calls


def each(calls: int, work: Callable[[], Any]) -> Callable[[], None]:
    """``work`` done ``calls`` times."""

    def repeated() -> None:
        for _ in range(calls):
            work()

    return repeated


def main() -> None:
    """Print each part's CPU; the database and broker are bench.api's (kept as it left them)."""
    use_test_keys()
    os.environ.update(
        INTERACTIONS_ENVIRONMENT="test",
        INTERACTIONS_DATABASE_URL=DB_URL,
        INTERACTIONS_BROKER_URL=BROKER_URL,
        INTERACTIONS_API_RATE_LIMIT_REQUESTS=str(10**9),
    )
    # Imported once the settings are in place: the container reads them at first use.
    from bench.bare_app import create_app as bare_app  # noqa: PLC0415
    from models.base import utcnow  # noqa: PLC0415
    from models.enums import ChannelType  # noqa: PLC0415
    from services.clients.identity import parse_scopes  # noqa: PLC0415
    from services.container import container  # noqa: PLC0415
    from services.sending.batches import DispatchMessage  # noqa: PLC0415
    from services.sending.queued import record  # noqa: PLC0415
    from workers.api import create_app, read_json_lines  # noqa: PLC0415

    here = container()
    secret = here.api_keys.create("bench-parts", parse_scopes("send")).secret
    calls = 300
    keys = [str(uuid.uuid4()) for _ in range(ROUNDS * calls)]
    fresh = iter(keys)

    def accept() -> None:
        for _ in range(calls):
            key = next(fresh)
            here.acceptance.accept(
                f"C-{key[:8]}", CHANNEL, TEMPLATE, {"name": "R"}, key, "r.x@example.org", "parts"
            )

    one = DispatchMessage("k", "C-1", CHANNEL, TEMPLATE, {"name": "R"}, "r@example.org", None)
    validate, checks = (
        here.acceptance._validated,
        ("C-1", CHANNEL, TEMPLATE, {"name": "R"}, "k", "r@x.org"),
    )
    message: dict[str, float] = {
        "API key check": cpu_us(calls, each(calls, lambda: here.api_keys.authenticate(secret))),
        "rate count (Redis)": cpu_us(calls, each(calls, lambda: here.api_rate_limit.check("p"))),
        "key check and rate count, cached": cpu_us(
            calls, each(calls, lambda: here.api_keys.admit(secret, here.api_rate_limit))
        ),
        "checks (fields, address)": cpu_us(calls, each(calls, lambda: validate(*checks))),
        "publish one dispatch": cpu_us(calls, each(calls, lambda: here.publisher.publish([one]))),
        "accept (checks, write, publish)": cpu_us(calls, accept),
    }
    message["whole request (test client)"] = _requests(create_app(), secret, calls)
    message["bare route (test client)"] = _requests(bare_app(), secret, calls)

    rows = 20_000
    body = b"".join(json_lines(rows))
    parsed = list(read_json_lines(io.BytesIO(body)))
    producer = here.batch_producer
    checked = [producer._checked(r, "b", ChannelType.EMAIL, TEMPLATE) for r in parsed]
    messages = [m for m in checked if isinstance(m, DispatchMessage)]

    def recorded() -> None:
        with here.sessions() as session:  # rolled back: nothing stays
            record(session, messages, utcnow(), None)
            session.rollback()

    row: dict[str, float] = {
        "JSON Lines parse": cpu_us(rows, lambda: list(read_json_lines(io.BytesIO(body)))),
        "checks (fields, address)": cpu_us(
            rows, lambda: [producer._checked(r, "b", ChannelType.EMAIL, TEMPLATE) for r in parsed]
        ),
        "record (JSON, sealing, one INSERT)": cpu_us(rows, recorded),
        "envelopes built and pushed": cpu_us(rows, lambda: here.publisher.publish(messages)),
    }  # fmt: skip
    width = max(len(name) for name in [*message, *row])
    print("POST /v1/messages, CPU per request in this process:")
    for name, value in message.items():
        print(f"  {name:<{width}}  {value:7,.0f} us")
    print("batch upload, CPU per row in this process:")
    for name, value in row.items():
        print(f"  {name:<{width}}  {value:7,.1f} us")
    print(json.dumps({"message_us": message, "row_us": row}))
    import redis  # noqa: PLC0415

    redis.Redis.from_url(BROKER_URL).flushdb()


def _requests(app: Flask, secret: str, calls: int) -> float:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    requests = message_requests(ROUNDS * calls)
    pending = iter(requests)

    def post() -> None:
        for _ in range(calls):
            body, own = next(pending)
            client.post("/v1/messages", data=body, headers=headers | own)

    return cpu_us(calls, post)


if __name__ == "__main__":
    main()
