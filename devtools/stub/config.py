"""How the stub behaves: faults, latency and the delivery receipts it posts, checked on change."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlsplit

MAX_CALLBACK_STATUSES = 20
MAX_CALLBACK_DUPLICATES = 100


@dataclass(frozen=True)
class StubConfig:
    """How the stub behaves; every field can be changed while it runs.

    Once ``callback_url`` is set, each accepted notification gets one receipt per status in
    ``callback_statuses``, in that order, each posted ``callback_duplicates`` more times right
    after itself; ``callback_shuffle`` posts that whole list in a random order instead.
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

    def updated(self, changes: Mapping[str, Any]) -> StubConfig:
        """A copy with ``changes`` applied; ValueError names the first bad one."""
        known = {f.name for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}; known: {', '.join(sorted(known))}")
            _check_setting(name, value)
        return replace(self, **_with_statuses_aligned(dict(changes)))

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
