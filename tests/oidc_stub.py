"""A small OpenID Connect provider for tests, on a real loopback port.

It does what matters to a relying party: discovery, an authorization endpoint that keeps its
own session in a browser cookie (a browser it knows is signed in again without a login form),
a token endpoint taking client_secret_basic or client_secret_post as its discovery says, RS256
keys it can rotate (the old key leaves the JWKS), and an end-session endpoint that ends its
session and sends the browser back. It can also get the id_token wrong in one chosen way, or
be down (503 everywhere).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

CLIENT_ID = "interactions-console"
CLIENT_SECRET = "oidc-stub-client-secret-7a6b5c4d3e2f"
COOKIE = "stub_sso"
BOTH_AUTH_METHODS = ("client_secret_basic", "client_secret_post")

_keys: list[rsa.RSAPrivateKey] = []
_keys_lock = threading.Lock()


def _key(index: int) -> rsa.RSAPrivateKey:
    """The index-th RSA key, made once per test run: key generation is the slow part."""
    with _keys_lock:
        while len(_keys) <= index:
            _keys.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return _keys[index]


def _half_hash(value: str) -> str:
    """at_hash for RS256: the left half of the SHA-256, base64url without padding."""
    digest = hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def _audience(tamper: str | None) -> str | list[str]:
    """The id_token's aud: this client, another, or both."""
    if tamper == "audience":
        return "someone-else"
    return [CLIENT_ID, "another-client"] if tamper == "audiences" else CLIENT_ID


@dataclass
class StubProvider:
    """What the provider does next and what it saw."""

    # Whom the login form signs in; a provider session keeps the claims it signed in with.
    claims: dict[str, Any] = field(
        default_factory=lambda: {"sub": "u-1", "preferred_username": "o.idc", "roles": []}
    )
    # None, or one of "audience", "audiences", "nonce", "key", "expired", "issuer", "none",
    # "hs256", "es256", "skewed", "at_hash", "retired": what to get wrong in the token
    # ("audiences": this client and another; "skewed": issued 50 seconds in the future;
    # "key": signed by a stranger's key under the current kid; "es256": signed by the EC key
    # the JWKS also lists; "retired": signed by the key the last rotation took out of the
    # JWKS, under its own kid).
    tamper: str | None = None
    # What the discovery document lists, and so what the token endpoint accepts.
    auth_methods: tuple[str, ...] = BOTH_AUTH_METHODS
    # True: every endpoint answers 503, as a provider that is down does.
    down: bool = False
    # Another host name for the end-session endpoint (the same server on another origin).
    end_session_host: str | None = None
    # Where the end-session endpoint agrees to send a browser back.
    post_logout_redirect_uris: tuple[str, ...] = ("http://localhost/login",)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    auth_used: list[str] = field(default_factory=list)
    # Provider sessions by cookie value: their public sid and the claims they sign in with.
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    reads: Counter[str] = field(default_factory=Counter)
    issued: list[str] = field(default_factory=list)


class OidcStub:
    """The provider on a free loopback port, serving on a thread."""

    def __init__(self) -> None:
        self.state = StubProvider()
        # The key in the JWKS, the ones rotated out, and a stranger's key.
        self._generation = 1
        self._stranger = _key(0)
        self._ec_key = ec.generate_private_key(ec.SECP256R1())
        self._retired: list[tuple[str, rsa.RSAPrivateKey]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def kid(self) -> str:
        return f"k{self._generation}"

    def start(self) -> OidcStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def rotate_keys(self) -> None:
        """Sign with a new key under a new kid; the old key leaves the JWKS."""
        self._retired.append((self.kid, _key(self._generation)))
        self._generation += 1

    def jwks(self) -> dict[str, Any]:
        public = _key(self._generation).public_key()
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._ec_key.public_key()))
        return {
            "keys": [
                {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"},
                {**ec_jwk, "kid": "e1", "use": "sig", "alg": "ES256"},
            ]
        }

    def _end_session_origin(self) -> str:
        if self.state.end_session_host is None:
            return self.issuer
        return f"http://{self.state.end_session_host}:{self._server.server_address[1]}"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "end_session_endpoint": f"{self._end_session_origin()}/logout",
            "token_endpoint_auth_methods_supported": list(self.state.auth_methods),
            # More than it signs with, as providers do: the client must still want RS256.
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "HS256", "none"],
            "code_challenge_methods_supported": ["S256"],
        }

    def id_token(self, nonce: str, access_token: str, signed_in: dict[str, Any]) -> str:
        now = int(time.time())
        tamper = self.state.tamper
        claims = {
            **signed_in["claims"],
            "iss": f"{self.issuer}/elsewhere" if tamper == "issuer" else self.issuer,
            "aud": _audience(tamper),
            "iat": now + 50 if tamper == "skewed" else now,
            "nbf": now + 50 if tamper == "skewed" else now,
            "exp": now - 120 if tamper == "expired" else now + 300,
            "nonce": "another-nonce" if tamper == "nonce" else nonce,
            "sid": signed_in["sid"],
            "at_hash": _half_hash("another-token" if tamper == "at_hash" else access_token),
        }
        kid, key = self.kid, _key(self._generation)
        if tamper == "none":
            return jwt.encode(claims, None, algorithm="none", headers={"kid": kid})
        if tamper == "hs256":
            # Signed with the client secret the console also holds: not the provider's key.
            return jwt.encode(claims, CLIENT_SECRET, algorithm="HS256", headers={"kid": kid})
        if tamper == "es256":
            return jwt.encode(claims, self._ec_key, algorithm="ES256", headers={"kid": "e1"})
        if tamper == "key":
            key = self._stranger
        elif tamper == "retired":
            kid, key = self._retired[-1]
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    def _login_page(self, query: dict[str, str]) -> bytes:
        asked = html.escape(urlencode(query))
        return (
            '<form method="post" action="/login">'
            f'<input type="hidden" name="request" value="{asked}">'
            "<button>Sign in</button></form>"
        ).encode()

    def _authorize(
        self, query: dict[str, str], cookie: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        if (
            query.get("client_id") != CLIENT_ID
            or query.get("response_type") != "code"
            or "openid" not in query.get("scope", "").split()
            or query.get("code_challenge_method") != "S256"
        ):
            return 400, {}, b"bad authorization request"
        signed_in = self.state.sessions.get(cookie or "")
        if signed_in is None:
            return 200, {"Content-Type": "text/html"}, self._login_page(query)
        return self._issue_code(query, signed_in, {})

    def _login(self, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """The login form's answer: a new provider session, and on to the client with a code."""
        query = {k: v[0] for k, v in parse_qs(form.get("request", "")).items()}
        cookie = secrets.token_urlsafe(16)
        signed_in = {"sid": secrets.token_urlsafe(8), "claims": dict(self.state.claims)}
        self.state.sessions[cookie] = signed_in
        return self._issue_code(query, signed_in, {"Set-Cookie": f"{COOKIE}={cookie}; Path=/"})

    def _issue_code(
        self, query: dict[str, str], signed_in: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        code = secrets.token_urlsafe(16)
        self.state.codes[code] = {"query": query, "signed_in": signed_in}
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return 302, {**headers, "Location": target}, b""

    def _client_auth(self, form: dict[str, str], authorization: str) -> str | None:
        """Which accepted method authenticated the client, if one did."""
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if authorization == f"Basic {basic}":
            method = "client_secret_basic"
        elif form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET:
            method = "client_secret_post"
        else:
            return None
        return method if method in self.state.auth_methods else None

    def _token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        self.state.token_requests.append(form)
        method = self._client_auth(form, authorization)
        if method is None:
            return 401, {"error": "invalid_client"}
        self.state.auth_used.append(method)
        issued = self.state.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if (
            issued is None
            or issued["query"]["redirect_uri"] != form.get("redirect_uri")
            or challenge.decode().rstrip("=") != issued["query"]["code_challenge"]
        ):
            return 400, {"error": "invalid_grant"}
        access_token = secrets.token_urlsafe(24)
        id_token = self.id_token(issued["query"]["nonce"], access_token, issued["signed_in"])
        self.state.issued.append(id_token)
        return 200, {
            "access_token": access_token,
            "id_token": id_token,
            "token_type": "Bearer",
            "expires_in": 300,
        }

    def _end_session(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """End the session the id_token_hint names; back to a registered address."""
        keys = [key for _, key in self._retired] + [_key(self._generation)]
        hint: dict[str, Any] | None = None
        for key in keys:
            try:
                hint = jwt.decode(
                    query.get("id_token_hint", ""),
                    key.public_key(),
                    algorithms=["RS256"],
                    audience=CLIENT_ID,
                    issuer=self.issuer,
                    # A hint may have expired; it must still be ours.
                    options={"verify_exp": False},
                )
                break
            except jwt.PyJWTError:
                continue
        back = query.get("post_logout_redirect_uri")
        if hint is None or (back is not None and back not in self.state.post_logout_redirect_uris):
            return 400, {}, b"bad end-session request"
        for cookie, signed_in in list(self.state.sessions.items()):
            if signed_in["sid"] == hint.get("sid"):
                del self.state.sessions[cookie]
        if back is None:
            return 200, {}, b"signed out"
        target = f"{back}?{urlencode({'state': query['state']})}" if "state" in query else back
        return 302, {"Location": target}, b""

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

            def _cookie(self) -> str | None:
                for part in self.headers.get("Cookie", "").split(";"):
                    name, _, value = part.strip().partition("=")
                    if name == COOKIE:
                        return value
                return None

            def do_GET(self) -> None:
                if stub.state.down:
                    self._send(503, b"down", {})
                    return
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                stub.state.reads[parts.path] += 1
                if parts.path == "/.well-known/openid-configuration":
                    self._json(200, stub.discovery())
                elif parts.path == "/jwks":
                    self._json(200, stub.jwks())
                elif parts.path == "/authorize":
                    status, headers, body = stub._authorize(query, self._cookie())
                    self._send(status, body, headers)
                elif parts.path == "/logout":
                    status, headers, body = stub._end_session(query)
                    self._send(status, body, headers)
                else:
                    self._send(404, b"", {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if stub.state.down:
                    self._send(503, b"down", {})
                    return
                path = urlsplit(self.path).path
                if path == "/token":
                    self._json(*stub._token(form, self.headers.get("Authorization", "")))
                elif path == "/login":
                    status, headers, body = stub._login(form)
                    self._send(status, body, headers)
                else:
                    self._send(404, b"", {})

        return Handler
