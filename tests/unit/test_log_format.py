"""The log formats: ids from extras and task context, other extras dropped, addresses masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from config.logging import (
    CELERY_RECEIVED_LOGGER,
    bind,
    configure_logging,
    end_context,
    log_context,
    scrub,
    start_context,
)


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure_logging(logging.DEBUG, "json", stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _last(stream: io.StringIO) -> dict[str, object]:
    return json.loads(stream.getvalue().splitlines()[-1])  # type: ignore[no-any-return]


def test_json_line_carries_safe_extras_and_drops_the_rest(lines: io.StringIO) -> None:
    logging.getLogger("t").warning(
        "failed for %s",
        "ada@example.org",
        extra={
            "idempotency_key": "b1:C-1",
            "batch_id": "b1",
            "recipient": "ada@example.org",
            "payload": {"name": "Ada"},
            "reason": "429 from ada@example.org",
        },
    )
    line = _last(lines)
    assert line["message"] == "failed for [email]"
    assert (line["idempotency_key"], line["batch_id"], line["level"]) == ("b1:C-1", "b1", "WARNING")
    assert line["reason"] == "429 from [email]"
    assert "recipient" not in line and "payload" not in line
    assert "Ada" not in lines.getvalue()


def test_task_context_and_ids_bound_later_reach_every_line(lines: io.StringIO) -> None:
    start_context(task_id="t-1", idempotency_key="k", batch_id="b", recipient="x@example.org")
    bind(interaction_uuid="u-1")
    logging.getLogger("celery.app.trace").info("Task succeeded")
    end_context()
    line = _last(lines)
    assert (line["task_id"], line["idempotency_key"], line["interaction_uuid"]) == (
        "t-1",
        "k",
        "u-1",
    )
    assert "recipient" not in line
    logging.getLogger("t").info("after")
    assert "task_id" not in _last(lines)
    bind(interaction_uuid="ignored outside a context")
    logging.getLogger("t").info("still clean")
    assert "interaction_uuid" not in _last(lines)


def test_nested_context_restores_the_outer_one(lines: io.StringIO) -> None:
    with log_context(batch_id="outer"):
        with log_context(idempotency_key="inner"):
            logging.getLogger("t").info("inner")
            assert _last(lines)["batch_id"] == "outer"
        logging.getLogger("t").info("outer")
        assert "idempotency_key" not in _last(lines)


def test_exceptions_are_json_with_addresses_masked(lines: io.StringIO) -> None:
    try:
        raise ValueError("bad address bob@example.org")
    except ValueError:
        logging.getLogger("t").exception("it failed")
    line = _last(lines)
    assert line["exc_type"] == "ValueError"
    assert "bob@example.org" not in str(line["exc"]) and "[email]" in str(line["exc"])


def test_text_format_is_readable_with_ids_appended() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(logging.INFO, "text", stream)
        logging.getLogger("t").info("sent to a@b.org", extra={"batch_id": "b7"})
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    text = stream.getvalue().strip()
    assert text.endswith("INFO t: sent to [email]  batch_id=b7")


def test_scrub_masks_addresses_and_leaves_the_rest() -> None:
    assert scrub("to a.b+c@mail.example.gc.ca, ref 42") == "to [email], ref 42"


def test_authlib_debug_lines_are_not_kept_even_at_debug(lines: io.StringIO) -> None:
    # Authlib's client logs the PKCE code verifier of each sign-in at DEBUG.
    logging.getLogger("authlib.integrations.base_client.sync_app").debug("verifier-7f3a")
    logging.getLogger("t").debug("kept")
    assert "verifier-7f3a" not in lines.getvalue() and "kept" in lines.getvalue()


def test_a_task_logs_one_info_line_its_end_not_its_arrival(lines: io.StringIO) -> None:
    logging.getLogger(CELERY_RECEIVED_LOGGER).info("Task tasks.dispatch[1] received")
    logging.getLogger("celery.app.trace").info("Task tasks.dispatch[1] succeeded in 0.01s")
    logging.getLogger(CELERY_RECEIVED_LOGGER).warning("unknown task")
    kept = [json.loads(line)["message"] for line in lines.getvalue().splitlines()]
    assert kept == ["Task tasks.dispatch[1] succeeded in 0.01s", "unknown task"]


def test_own_extras_win_over_the_context_and_are_scrubbed_in_field_order(
    lines: io.StringIO,
) -> None:
    with log_context(customer_id="C-1", batch_id="b-1"):
        logging.getLogger("t").info("x", extra={"customer_id": "ada@example.org", "count": 3})
    line = _last(lines)
    assert line["customer_id"] == "[email]" and line["batch_id"] == "b-1"
    assert [k for k in line if k in ("batch_id", "customer_id", "count")] == [
        "batch_id",
        "customer_id",
        "count",
    ]
