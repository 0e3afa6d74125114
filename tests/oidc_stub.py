"""A tiny OpenID Connect provider for tests: discovery, authorize, token (RS256) and JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "interactions-console"
CLIENT_SECRET = "oidc-stub-client-secret-7a6b5c4d3e2f"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _audience(tamper: str | None) -> str | list[str]:
    """The id_token's aud: this client, another, or both."""
    if tamper == "audience":
        return "someone-else"
    return [CLIENT_ID, "another-client"] if tamper == "audiences" else CLIENT_ID


@dataclass
class StubProvider:
    """What the provider does next: whom it signs in, and how it may misbehave."""

    claims: dict[str, Any] = field(
        default_factory=lambda: {"sub": "u-1", "preferred_username": "o.idc", "roles": []}
    )
    # None, or one of "audience", "audiences", "nonce", "key", "expired", "issuer", "none",
    # "hs256", "skewed": what to get wrong in the token ("audiences": this client and another;
    # "skewed": issued 50 seconds in the future).
    tamper: str | None = None
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)


class OidcStub:
    """The provider on a free loopback port, serving on a thread."""

    def __init__(self) -> None:
        self.state = StubProvider()
        self._key, self._stranger = _key(), _key()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> OidcStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        tamper = self.state.tamper
        claims = {
            **self.state.claims,
            "iss": f"{self.issuer}/elsewhere" if tamper == "issuer" else self.issuer,
            "aud": _audience(tamper),
            "iat": now + 50 if tamper == "skewed" else now,
            "nbf": now + 50 if tamper == "skewed" else now,
            "exp": now - 120 if tamper == "expired" else now + 300,
            "nonce": "another-nonce" if tamper == "nonce" else nonce,
        }
        headers = {"kid": "k1"}
        if tamper == "none":
            return jwt.encode(claims, None, algorithm="none", headers=headers)
        if tamper == "hs256":
            # Signed with the client secret the console also holds: not the provider's key.
            return jwt.encode(claims, CLIENT_SECRET, algorithm="HS256", headers=headers)
        key = self._stranger if tamper == "key" else self._key
        return jwt.encode(claims, key, algorithm="RS256", headers=headers)

    def _authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if query.get("client_id") != CLIENT_ID or query.get("code_challenge_method") != "S256":
            return 400, {}, b"bad authorization request"
        code = secrets.token_urlsafe(16)
        self.state.codes[code] = query
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return 302, {"Location": target}, b""

    def _token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        self.state.token_requests.append(form)
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if authorization != f"Basic {expected}":
            return 401, {"error": "invalid_client"}
        asked = self.state.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if (
            asked is None
            or asked["redirect_uri"] != form.get("redirect_uri")
            or challenge.decode().rstrip("=") != asked["code_challenge"]
        ):
            return 400, {"error": "invalid_grant"}
        return 200, {"id_token": self.id_token(asked["nonce"]), "token_type": "Bearer"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                return

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, document: dict[str, Any]) -> None:
                self._send(
                    status, json.dumps(document).encode(), {"Content-Type": "application/json"}
                )

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/.well-known/openid-configuration":
                    self._json(
                        200,
                        {
                            "issuer": stub.issuer,
                            "authorization_endpoint": f"{stub.issuer}/authorize",
                            "token_endpoint": f"{stub.issuer}/token",
                            "jwks_uri": f"{stub.issuer}/jwks",
                        },
                    )
                elif parts.path == "/jwks":
                    self._json(200, stub.jwks())
                elif parts.path == "/authorize":
                    status, headers, body = stub._authorize(query)
                    self._send(status, body, headers)
                else:
                    self._send(404, b"", {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if urlsplit(self.path).path != "/token":
                    self._send(404, b"", {})
                    return
                self._json(*stub._token(form, self.headers.get("Authorization", "")))

        return Handler
