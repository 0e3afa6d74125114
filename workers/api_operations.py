"""What each API view declares once: its scope, its body, its parameters and its answers.

The ``operation`` decorator both enforces the declaration (the caller's credential, scope and
request rate) and records it on the view, where workers.api_openapi reads it to write the
OpenAPI document: the document cannot describe a view other than the one that runs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Response, g, jsonify, request
from pydantic import BaseModel

from services.clients.identity import Caller, Scope, Unauthenticated
from services.clients.rate import Verdict
from workers.webapp import services

log = logging.getLogger(__name__)
View = TypeVar("View", bound=Callable[..., Any])
ATTRIBUTE = "api_operation"
PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Parameter:
    """A path, query or header parameter and its JSON Schema."""

    name: str
    where: str
    schema: dict[str, Any]
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class Operation:
    """One view as the document describes it."""

    summary: str
    scope: Scope | None
    responses: Mapping[int, type[BaseModel] | None]
    body: type[BaseModel] | None = None
    # Media types of a streamed body the view reads itself (a batch upload).
    raw_body: tuple[str, ...] = ()
    parameters: tuple[Parameter, ...] = field(default=())
    tag: str = "api"


class ApiProblem(Exception):
    """An answer in the problem shape, raised from anywhere a view runs."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        kind: str = "about:blank",
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.kind = kind


def problem_response(problem: ApiProblem) -> Response:
    """The RFC 9457 body and headers of ``problem``."""
    body: dict[str, Any] = {"type": problem.kind, "title": problem.title, "status": problem.status}
    if problem.detail is not None:
        body["detail"] = problem.detail
    if problem.errors is not None:
        body["errors"] = problem.errors
    response = jsonify(body)
    response.status_code = problem.status
    response.mimetype = PROBLEM
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def caller() -> Caller:
    """The client making the current request (set by ``operation``)."""
    found: Caller = g.api_caller
    return found


def _authenticate() -> tuple[Caller, Verdict]:
    """The caller behind the request's bearer credential (an API key or an identity token)
    and its request counted against its rate."""
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthenticated
    credential = credential.strip()
    here = services()
    if credential.count(".") == 2 and here.api_tokens is not None:
        found = here.api_tokens.caller(credential)
        return found, here.api_rate_limit.check(found.client)
    # A key's check and its count are one Redis round trip.
    return here.api_keys.admit(credential, here.api_rate_limit)


def _admit(scope: Scope) -> Caller:
    """Authenticate, count against the client's rate, and check the scope, in that order."""
    try:
        found, verdict = _authenticate()
    except Unauthenticated:
        raise ApiProblem(
            401,
            "Unauthenticated",
            "send a live API key or identity token as 'Authorization: Bearer ...'",
            headers={"WWW-Authenticate": 'Bearer realm="interactions"'},
        ) from None
    if not verdict.allowed:
        raise ApiProblem(
            429,
            "Too Many Requests",
            f"this client is over its request rate; try again in {verdict.retry_after} s",
            headers={"Retry-After": str(verdict.retry_after)},
        )
    if not found.may(scope):
        raise ApiProblem(403, "Forbidden", f"this client lacks the '{scope.value}' scope")
    return found


def operation(
    summary: str,
    scope: Scope | None,
    responses: Mapping[int, type[BaseModel] | None],
    body: type[BaseModel] | None = None,
    raw_body: tuple[str, ...] = (),
    parameters: tuple[Parameter, ...] = (),
    tag: str = "api",
) -> Callable[[View], View]:
    """Declare a view for the document and guard it with ``scope`` (None: open to all)."""
    declared = Operation(summary, scope, responses, body, raw_body, parameters, tag)

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if scope is not None:
                g.api_caller = _admit(scope)
            return view(*args, **kwargs)

        setattr(guarded, ATTRIBUTE, declared)
        return guarded  # type: ignore[return-value]

    return decorate


def declared(view: Callable[..., Any]) -> Operation | None:
    """The declaration a view carries, if any."""
    found: Operation | None = getattr(view, ATTRIBUTE, None)
    return found
