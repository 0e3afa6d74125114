"""How the stub behaves: faults, limits, outages, latency and receipts, checked on change."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlsplit

MAX_CALLBACK_STATUSES = 20
MAX_CALLBACK_DUPLICATES = 100
OUTAGE_MODES = ("refuse", "error")


@dataclass(frozen=True)
class StubConfig:
    """How the stub behaves; every field can be changed while it runs.

    Once ``callback_url`` is set, each accepted notification gets one receipt per status in
    ``callback_statuses``, in that order, each posted ``callback_duplicates`` more times right
    after itself; ``callback_shuffle`` posts that whole list in a random order instead.

    Sends are limited per key (the token's issuer, the key's service id): at most ``rate_limit``
    in any ``rate_window_seconds`` and ``daily_limit`` accepted per ``daily_reset_seconds``;
    0 turns a limit off. Keys in ``revoked_keys`` (or every key, with ``revoke_all``) are
    refused on every endpoint. Setting ``outage_mode`` starts an outage of ``outage_seconds``.
    """

    latency_ms: float = 0.0
    failure_rate: float = 0.0
    failure_status: int = 500
    fail_next: int = 0
    hold_ms: float = 0.0
    reject_recipients_containing: str | None = None
    callback_url: str | None = None
    callback_token: str | None = None
    # The last of callback_statuses; setting it alone means callback_statuses=[it].
    callback_status: str = "delivered"
    callback_statuses: tuple[str, ...] = ("delivered",)
    callback_duplicates: int = 0
    callback_shuffle: bool = False
    callback_delay_ms: float = 0.0
    rate_limit: int = 0
    rate_window_seconds: float = 1.0
    # Notify counts every request in the window, the refused ones too.
    rate_limit_counts_refused: bool = True
    retry_after_seconds: int | None = None
    daily_limit: int = 0
    daily_reset_seconds: float = 86400.0
    revoked_keys: tuple[str, ...] = ()
    revoke_all: bool = False
    outage_mode: str | None = None
    outage_seconds: float = 10.0

    def updated(self, changes: Mapping[str, Any]) -> StubConfig:
        """A copy with ``changes`` applied; ValueError names the first bad one."""
        known = {f.name for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}; known: {', '.join(sorted(known))}")
            if name in _LIMIT_SETTINGS:
                _check_limit_setting(name, value)
            else:
                _check_setting(name, value)
        aligned = _with_statuses_aligned(dict(changes))
        if "revoked_keys" in aligned:
            aligned["revoked_keys"] = tuple(sorted(set(aligned["revoked_keys"])))
        return replace(self, **aligned)

    def callback_plan(self, rng: random.Random) -> list[str]:
        """The status of each receipt one notification gets, in the order they are posted."""
        repeats = 1 + self.callback_duplicates
        plan = [status for status in self.callback_statuses for _ in range(repeats)]
        if self.callback_shuffle:
            rng.shuffle(plan)
        return plan


def _with_statuses_aligned(changes: dict[str, Any]) -> dict[str, Any]:
    """Keep callback_status equal to the last of callback_statuses, whichever one was given."""
    if "callback_statuses" in changes:
        statuses = tuple(changes["callback_statuses"])
        given = changes.get("callback_status", statuses[-1])
        if given != statuses[-1]:
            raise ValueError("callback_status must be the last of callback_statuses, or left out")
        changes.update(callback_statuses=statuses, callback_status=statuses[-1])
    elif "callback_status" in changes:
        changes["callback_statuses"] = (changes["callback_status"],)
    return changes


_CALLBACK_PLAN_SETTINGS = ("callback_statuses", "callback_duplicates", "callback_shuffle")


def _check_setting(name: str, value: Any) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if name in ("latency_ms", "hold_ms", "callback_delay_ms", "failure_rate"):
        if not number or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a number of at least 0")
        if name == "failure_rate" and value > 1:
            raise ValueError("failure_rate must be between 0 and 1")
    elif name == "failure_status":
        if not isinstance(value, int) or isinstance(value, bool) or not 400 <= value <= 599:
            raise ValueError("failure_status must be an HTTP status from 400 to 599")
    elif name == "fail_next":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError("fail_next must be a whole number of at least 0")
    elif name == "callback_status":
        if not isinstance(value, str) or not value:
            raise ValueError("callback_status must be a Notify status such as 'delivered'")
    elif name in _CALLBACK_PLAN_SETTINGS:
        _check_callback_plan_setting(name, value)
    elif value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null")
    elif name == "callback_url" and value and urlsplit(value).scheme not in ("http", "https"):
        raise ValueError("callback_url must be an http:// or https:// URL")


def _check_callback_plan_setting(name: str, value: Any) -> None:
    if name == "callback_statuses":
        words = value if isinstance(value, list | tuple) else []
        if not 1 <= len(words) <= MAX_CALLBACK_STATUSES or not all(
            isinstance(word, str) and word for word in words
        ):
            raise ValueError(
                f"callback_statuses must list 1 to {MAX_CALLBACK_STATUSES} Notify statuses, "
                "such as ['delivered', 'opened']"
            )
    elif name == "callback_duplicates":
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not whole or not 0 <= value <= MAX_CALLBACK_DUPLICATES:
            raise ValueError(
                f"callback_duplicates must be a whole number from 0 to {MAX_CALLBACK_DUPLICATES}"
            )
    elif not isinstance(value, bool):
        raise ValueError("callback_shuffle must be true or false")


_LIMIT_SETTINGS = frozenset(
    {
        "rate_limit",
        "rate_window_seconds",
        "rate_limit_counts_refused",
        "retry_after_seconds",
        "daily_limit",
        "daily_reset_seconds",
        "revoked_keys",
        "revoke_all",
        "outage_mode",
        "outage_seconds",
    }
)


def _is_whole(value: Any) -> bool:
    """A whole number of at least 0, and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_positive(value: Any) -> bool:
    """A finite number above 0, and not a bool."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and math.isfinite(value) and value > 0


def _check_limit_setting(name: str, value: Any) -> None:
    if name in ("rate_limit", "daily_limit") and not _is_whole(value):
        raise ValueError(f"{name} must be a whole number of at least 0 (0 turns it off)")
    positive = ("rate_window_seconds", "daily_reset_seconds", "outage_seconds")
    if name in positive and not _is_positive(value):
        raise ValueError(f"{name} must be a number above 0")
    if name in ("rate_limit_counts_refused", "revoke_all") and not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    if name == "retry_after_seconds" and value is not None and not _is_whole(value):
        raise ValueError("retry_after_seconds must be a whole number of at least 0, or null")
    if name == "revoked_keys" and not (
        isinstance(value, list | tuple | set | frozenset)
        and all(isinstance(key, str) and key for key in value)
    ):
        raise ValueError("revoked_keys must list key ids (the service ids tokens are issued by)")
    if name == "outage_mode" and value is not None and value not in OUTAGE_MODES:
        raise ValueError("outage_mode must be 'refuse', 'error' or null")
