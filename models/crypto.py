"""Personal data at rest: AES-256-GCM under a key ring, sealed column types, a blind index.

Every sealed value reads ``v1:<key id>:<base64 nonce+ciphertext>``: a fresh 96-bit nonce per
value, the column's name as associated data (a value cannot be moved to another column), and
the key id beside it so several keys can be live while one is active. Lookups by address use
an HMAC of the normalised address under a separate key, never the ciphertext.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from config.settings import Settings, get_settings

log = logging.getLogger(__name__)
VERSION = "v1"
NONCE_BYTES = 12
SEALED_KEYS = ("payload",)  # meta_data entries that hold personal data


class UnknownKey(LookupError):
    """A sealed value names a key the ring does not hold."""


class Undecryptable(ValueError):
    """A sealed value failed authentication: the wrong key, or it was altered."""


def _decode_key(name: str, value: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError(f"encryption key {name!r} is not base64") from None
    if len(key) != 32:
        raise ValueError(f"encryption key {name!r} must be 32 bytes (AES-256), not {len(key)}")
    return key


@dataclass(frozen=True)
class KeyRing:
    """The data keys (one active, the rest for reading) and the blind-index key."""

    keys: Mapping[str, bytes] = field(repr=False)
    active: str
    index_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise ValueError(f"the active key {self.active!r} is not in the key ring")
        if any(":" in name or not name for name in self.keys):
            raise ValueError("key ids must be non-empty and must not contain ':'")

    def seal(self, plaintext: str, purpose: str) -> str:
        """Encrypt ``plaintext`` under the active key, bound to ``purpose``."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        cipher = _cipher(self.keys[self.active])
        sealed = cipher.encrypt(nonce, plaintext.encode(), purpose.encode())
        return f"{VERSION}:{self.active}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, value: str, purpose: str) -> str:
        """Decrypt a sealed value with whichever key sealed it."""
        key_id, blob = self._split(value)
        key = self.keys.get(key_id)
        if key is None:
            raise UnknownKey(f"no key {key_id!r} in the key ring to read a {purpose} value")
        try:
            plain = _cipher(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], purpose.encode())
        except InvalidTag:
            raise Undecryptable(f"a {purpose} value failed authentication") from None
        return plain.decode()

    @staticmethod
    def _split(value: str) -> tuple[str, bytes]:
        version, _, rest = value.partition(":")
        key_id, _, encoded = rest.partition(":")
        if version != VERSION or not key_id or not encoded:
            raise Undecryptable("not a sealed value")
        try:
            return key_id, base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise Undecryptable("not a sealed value") from None

    @staticmethod
    def key_id_of(value: str) -> str:
        """The id of the key that sealed ``value``."""
        return KeyRing._split(value)[0]

    def blind_index(self, normalised: str) -> str:
        """The keyed hash that finds a value without decrypting anything."""
        return hmac.new(self.index_key, normalised.encode(), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=32)
def _cipher(key: bytes) -> AESGCM:
    """One cipher object per key, kept: making one per value cost as much as the encryption."""
    return AESGCM(key)


def _development_ring(var_dir: Path) -> KeyRing:
    """A key ring kept under ``var_dir`` for development, created on first use."""
    path = var_dir / "keys.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        key_id = f"dev-{datetime.now(UTC):%Y%m%d}"
        document = {
            "active": key_id,
            "keys": {key_id: base64.b64encode(secrets.token_bytes(32)).decode()},
            "blind_index_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        }
        with os.fdopen(fd, "w") as stream:
            json.dump(document, stream)
    document = json.loads(path.read_text())
    message = (
        f"WARNING: personal data is encrypted with a development key from {path}; "
        "set INTERACTIONS_ENCRYPTION_KEYS, INTERACTIONS_ENCRYPTION_ACTIVE_KEY and "
        "INTERACTIONS_BLIND_INDEX_KEY outside development"
    )
    # Once: logging prints it on standard error even where no handler is configured.
    log.warning(message)
    keys = {name: _decode_key(name, value) for name, value in document["keys"].items()}
    return KeyRing(
        keys, document["active"], _decode_key("blind index", document["blind_index_key"])
    )


def load_keyring(settings: Settings) -> KeyRing:
    """The key ring the settings name, or in development one generated under ``var/``."""
    if settings.encryption_keys:
        keys = {
            name: _decode_key(name, secret.get_secret_value())
            for name, secret in settings.encryption_keys.items()
        }
        active = settings.encryption_active_key or ""
        if settings.blind_index_key is None:
            raise ValueError("INTERACTIONS_BLIND_INDEX_KEY must be set with the encryption keys")
        index_key = _decode_key("blind index", settings.blind_index_key.get_secret_value())
        return KeyRing(keys, active, index_key)
    if settings.environment == "production":
        raise ValueError("production refuses to start without INTERACTIONS_ENCRYPTION_KEYS")
    return _development_ring(settings.var_dir)


_lock = threading.Lock()
_ring: KeyRing | None = None


def keyring() -> KeyRing:
    """The ring sealed columns use: the one installed, else the settings' (loaded once)."""
    global _ring  # noqa: PLW0603 - column types are built at import, so they read a slot
    with _lock:
        if _ring is None:
            _ring = load_keyring(get_settings())
        return _ring


def install_keyring(ring: KeyRing | None) -> None:
    """Use ``ring`` from now on (None: load from settings again on next use)."""
    global _ring  # noqa: PLW0603
    with _lock:
        _ring = ring


class SealedText(sa.TypeDecorator[str]):
    """Text stored sealed; reads give the plaintext back."""

    impl = sa.Text
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring().seal(value, self.purpose)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring().open(value, self.purpose)


class SealedJSON(sa.TypeDecorator[dict[str, Any]]):
    """A JSON document whose personal entries (``payload``) are sealed; the rest stays queryable."""

    impl = sa.JSON
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(sa.JSON())

    def process_bind_param(
        self, value: dict[str, Any] | None, dialect: Dialect
    ) -> dict[str, Any] | None:
        if value is None:
            return None
        sealed = dict(value)
        for name in SEALED_KEYS:
            if name in sealed:
                text = json.dumps(sealed[name], ensure_ascii=False)
                sealed[name] = {"sealed": keyring().seal(text, f"{self.purpose}.{name}")}
        return sealed

    def process_result_value(
        self, value: dict[str, Any] | None, dialect: Dialect
    ) -> dict[str, Any] | None:
        if value is None:
            return None
        opened = dict(value)
        for name in SEALED_KEYS:
            entry = opened.get(name)
            if isinstance(entry, dict) and "sealed" in entry:
                opened[name] = json.loads(keyring().open(entry["sealed"], f"{self.purpose}.{name}"))
        return opened
