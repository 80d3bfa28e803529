"""OpenAPI documentation of routes whose bodies are read by hand (plain Starlette routes, or
FastAPI routes that parse ``await request.body()`` themselves for speed or for their own
error shape): their request and response models are added to the app's generated document.

Schemas go to ``components/schemas`` (references ``#/components/schemas/<Model>``), so the
document stays valid OpenAPI 3.1 for clients and for schemathesis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

_REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Operation:
    """``method`` on ``path``: a JSON body of ``request`` answered by ``response`` (200) or by
    an OpenAI-style error (``errors``: the statuses it may have)."""

    path: str
    method: str
    request: type[BaseModel]
    response: type[BaseModel] | None = None
    summary: str = ""
    errors: tuple[int, ...] = (400,)


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=_REF)
    for name, sub in schema.pop("$defs", {}).items():
        components.setdefault(name, sub)
    components.setdefault(model.__name__, schema)
    return {"$ref": _REF.format(model=model.__name__)}


def _error_schema() -> dict[str, Any]:
    inner = {
        "type": "object",
        "properties": {
            "message": {"type": "string"},
            "type": {"type": "string"},
            "param": {"type": ["string", "null"]},
            "code": {"type": ["integer", "string", "null"]},
        },
        "required": ["message", "type"],
    }
    return {"type": "object", "properties": {"error": inner}, "required": ["error"]}


def document(app: FastAPI, operations: Mapping[str, Operation] | list[Operation]) -> None:
    """Add ``operations`` to ``app``'s OpenAPI document (built once, on first request)."""
    ops = list(operations.values()) if isinstance(operations, Mapping) else list(operations)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = generate()
        components = doc.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("OpenAIError", _error_schema())
        error = {"content": {"application/json": {"schema": {"$ref": _REF.format(model="OpenAIError")}}}}
        for op in ops:
            ok: dict[str, Any] = {"description": "OK"}
            if op.response is not None:
                ok["content"] = {"application/json": {"schema": _schema(op.response, components)}}
            responses: dict[str, Any] = {"200": ok}
            for status in op.errors:
                responses[str(status)] = {"description": "error", **error}
            doc.setdefault("paths", {}).setdefault(op.path, {})[op.method] = {
                "summary": op.summary,
                "operationId": f"{op.method}_{op.path.strip('/').replace('/', '_')}",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _schema(op.request, components)}},
                },
                "responses": responses,
            }
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
