"""The OpenAPI 3.1 document, written from the views' declarations and the pydantic models.

OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what pydantic writes: each model's
schema goes under ``components.schemas`` as it is, and each view's declaration
(workers.api_operations) becomes its operation. Nothing is described by hand.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services.clients.identity import Scope
from workers.api_models import Problem
from workers.api_operations import PROBLEM, Operation, declared

TITLE = "Interaction Service API"
VERSION = "1.0.0"
REF = "#/components/schemas/{model}"
_RULE_PART = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")
_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden: the client lacks the scope",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported media type",
    422: "A field is not valid",
    429: "Over the client's request rate",
    500: "Internal error",
    503: "Unavailable",
}
# Every guarded operation may answer these, whatever it declares.
_GUARD = (401, 403, 429)


def document(app: Flask) -> dict[str, Any]:
    """The whole document for the API views ``app`` serves."""
    operations = _operations(app)
    models: set[type[BaseModel]] = {Problem}
    for _, _, op in operations:
        models.update(m for m in op.responses.values() if m is not None)
        if op.body is not None:
            models.add(op.body)
    _, schemas = models_json_schema(
        [(model, "serialization") for model in sorted(models, key=lambda m: m.__name__)],
        ref_template=REF,
    )
    paths: dict[str, dict[str, Any]] = {}
    for path, method, op in operations:
        paths.setdefault(path, {})[method] = _operation(op, path, method)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Send, steer and read the service's interactions. See docs/api.md.",
        },
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (interactions api-keys create) or an identity "
                    "provider's client-credentials token.",
                }
            },
        },
        "tags": [{"name": tag} for tag in sorted({op.tag for _, _, op in operations})],
    }


def _operations(app: Flask) -> list[tuple[str, str, Operation]]:
    """(path, method, declaration) of every declared view, in a stable order."""
    found = []
    for rule in app.url_map.iter_rules():
        op = declared(app.view_functions[rule.endpoint])
        if op is None:
            continue
        path = _RULE_PART.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((path, method.lower(), op))
    return sorted(found, key=lambda item: (item[0], item[1]))


def _operation(op: Operation, path: str, method: str) -> dict[str, Any]:
    """One operation object."""
    described: dict[str, Any] = {
        "summary": op.summary,
        "operationId": _operation_id(path, method),
        "tags": [op.tag],
        "responses": _responses(op),
    }
    if op.scope is not None:
        described["security"] = [{"bearer": []}]
        described["description"] = f"Needs the `{op.scope.value}` scope."
    else:
        described["security"] = []
    if op.parameters:
        described["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required or p.where == "path",
                "schema": p.schema,
                **({"description": p.description} if p.description else {}),
            }
            for p in op.parameters
        ]
    if op.body is not None:
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(op.body)}},
        }
    elif op.raw_body:
        described["requestBody"] = {
            "required": True,
            "content": {kind: {"schema": {"type": "string"}} for kind in op.raw_body},
        }
    return described


def _responses(op: Operation) -> dict[str, Any]:
    codes = dict(op.responses)
    if op.scope is not None:
        codes.update({code: None for code in _GUARD if code not in codes})
    codes.setdefault(500, None)
    answers: dict[str, Any] = {}
    for code, model in sorted(codes.items()):
        if code < 400:
            content = {"application/json": {"schema": _ref(model)}} if model else None
        else:
            content = {PROBLEM: {"schema": _ref(model or Problem)}}
        answer: dict[str, Any] = {"description": _REASONS.get(code, str(code))}
        if content:
            answer["content"] = content
        if code == 429:
            answer["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}
            }
        answers[str(code)] = answer
    return answers


def _ref(model: type[BaseModel] | None) -> dict[str, Any]:
    return {"$ref": REF.format(model=model.__name__)} if model else {}


def _operation_id(path: str, method: str) -> str:
    words = [part.strip("{}") for part in path.split("/") if part and part != "v1"]
    return "_".join([method, *words])


SCOPES = tuple(scope.value for scope in Scope)
