"""The development key ring: fixed encryption and blind-index keys, never for real data."""

from __future__ import annotations

import base64
import json
import os

TEST_KEYS = {
    "test-2026a": base64.b64encode(bytes(range(32))).decode(),
    "test-2026b": base64.b64encode(bytes(range(32, 64))).decode(),
}
TEST_ACTIVE_KEY = "test-2026a"
TEST_BLIND_INDEX_KEY = base64.b64encode(b"i" * 32).decode()


def use_test_keys() -> None:
    """Give this process and its children the development key ring, unless keys are set."""
    os.environ.setdefault("INTERACTIONS_ENCRYPTION_KEYS", json.dumps(TEST_KEYS))
    os.environ.setdefault("INTERACTIONS_ENCRYPTION_ACTIVE_KEY", TEST_ACTIVE_KEY)
    os.environ.setdefault("INTERACTIONS_BLIND_INDEX_KEY", TEST_BLIND_INDEX_KEY)
