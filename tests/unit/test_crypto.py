"""Sealing personal data: the key ring, with no database."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from config.settings import Settings
from models.crypto import KeyRing, Undecryptable, UnknownKey, load_keyring

KEY_A, KEY_B, INDEX = bytes(range(32)), bytes(range(32, 64)), b"i" * 32


def ring(active: str = "a", **keys: bytes) -> KeyRing:
    return KeyRing(keys or {"a": KEY_A, "b": KEY_B}, active, INDEX)


def test_a_sealed_value_opens_to_its_plaintext_and_hides_it() -> None:
    sealed = ring().seal("ada@example.org", "interactions.recipient")
    assert sealed.startswith("v1:a:")
    assert "ada" not in sealed and "example" not in base64.b64decode(sealed[5:]).decode("latin-1")
    assert ring().open(sealed, "interactions.recipient") == "ada@example.org"


def test_every_value_gets_a_fresh_nonce() -> None:
    one, two = (ring().seal("same", "p") for _ in range(2))
    assert one != two
    assert base64.b64decode(one[5:])[:12] != base64.b64decode(two[5:])[:12]


def test_a_value_cannot_move_to_another_column() -> None:
    sealed = ring().seal("secret", "contacts.email")
    with pytest.raises(Undecryptable, match=r"contacts\.phone"):
        ring().open(sealed, "contacts.phone")


def test_a_tampered_value_fails_authentication() -> None:
    sealed = ring().seal("secret", "p")
    raw = bytearray(base64.b64decode(sealed[5:]))
    raw[-1] ^= 1
    with pytest.raises(Undecryptable):
        ring().open("v1:a:" + base64.b64encode(bytes(raw)).decode(), "p")


def test_any_key_in_the_ring_opens_what_it_sealed() -> None:
    old = ring("a").seal("secret", "p")
    assert ring("b").open(old, "p") == "secret"
    with pytest.raises(UnknownKey, match="no key 'a'"):
        ring("b", b=KEY_B).open(old, "p")


def test_a_ring_must_hold_its_active_key() -> None:
    with pytest.raises(ValueError, match="not in the key ring"):
        KeyRing({"a": KEY_A}, "z", INDEX)


def test_the_blind_index_is_keyed_and_stable() -> None:
    assert ring().blind_index("email:ada@example.org") == ring("b").blind_index(
        "email:ada@example.org"
    )
    other = KeyRing({"a": KEY_A}, "a", b"j" * 32)
    assert other.blind_index("email:ada@example.org") != ring().blind_index("email:ada@example.org")


def test_production_refuses_to_start_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENCRYPTION_KEYS", "ENCRYPTION_ACTIVE_KEY", "BLIND_INDEX_KEY"):
        monkeypatch.delenv(f"INTERACTIONS_{name}", raising=False)
    with pytest.raises(ValidationError, match="production needs INTERACTIONS_ENCRYPTION_KEYS"):
        Settings(environment="production", database_url="postgresql://x/y", broker_url="redis://x")


def test_development_generates_a_key_once_and_says_so_loudly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("ENCRYPTION_KEYS", "ENCRYPTION_ACTIVE_KEY", "BLIND_INDEX_KEY"):
        monkeypatch.delenv(f"INTERACTIONS_{name}", raising=False)
    settings = Settings(environment="development", var_dir=tmp_path)
    first = load_keyring(settings)
    second = load_keyring(settings)
    assert first.active == second.active and first.keys == second.keys
    assert "WARNING: personal data is encrypted with a development key" in caplog.text
    stored = json.loads((tmp_path / "keys.json").read_text())
    assert stored["active"] == first.active
    assert (tmp_path / "keys.json").stat().st_mode & 0o077 == 0
