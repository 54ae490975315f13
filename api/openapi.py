"""The OpenAPI document as the wire is, and its docs pages served from this process (no CDN)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

# Swagger UI 5 and ReDoc 2 as published on npm, packaged on PyPI by fastapi-offline.
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_STATIC_URL = "/docs/static"
ERROR_REF = {"$ref": "#/components/schemas/Error"}

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "description": "Every failure, from any route: one flat object.",
    "type": "object",
    "required": ["error", "code", "param"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong, for a person"},
        "code": {"type": "string", "description": "Stable machine-readable code"},
        "param": {
            "type": ["string", "null"],
            "description": "The field, query parameter or header at fault, if one is",
        },
        "errors": {
            "type": "array",
            "description": "Every invalid field (422 invalid_input only)",
            "items": {
                "type": "object",
                "required": ["param", "error"],
                "properties": {
                    "param": {"type": ["string", "null"]},
                    "error": {"type": "string"},
                },
            },
        },
    },
}

_DESCRIPTIONS = {
    "400": "Malformed JSON, a bad Idempotency-Key, or a request the service refuses",
    "401": "Missing, invalid, revoked or expired API key",
    "403": "The key's role may not do this",
    "404": "No such resource (or route) for this key's organization",
    "409": "Conflicts with existing data, or the same Idempotency-Key is still in flight",
    "413": "Request body larger than the configured limit",
    "415": "Request body that is not JSON",
    "422": "Invalid input; `param` names the field, `errors` lists every one",
    "429": "Rate limit for this key exceeded; retry after `Retry-After` seconds",
}
_RATE_HEADERS = {
    name: {"description": text, "schema": {"type": "integer"}}
    for name, text in (
        ("X-RateLimit-Limit", "Requests allowed per minute for this key"),
        ("X-RateLimit-Remaining", "Requests left in the current minute"),
        ("X-RateLimit-Reset", "Unix time the current window ends"),
    )
}
_BODY_METHODS = {"post", "put", "patch"}
_IDEMPOTENT_METHODS = {"post", "put", "patch", "delete"}


def error_codes(method: str, operation: dict[str, Any]) -> list[str]:
    """The error statuses one operation can answer, from the layers every route shares."""
    # The body limit and the per-key rate limit are middleware in front of every route.
    codes = {"413", "429"}
    parameters = operation.get("parameters", [])
    if parameters or "requestBody" in operation:
        codes.add("422")
    if any(p.get("in") == "path" for p in parameters):
        codes.add("404")
    if operation.get("security"):
        codes |= {"400", "401", "403", "404", "409"}
    if method in _IDEMPOTENT_METHODS:
        codes |= {"400", "409", "422"}  # Idempotency-Key: malformed, still in flight, reused
    if method in _BODY_METHODS:
        codes |= {"400", "415"}  # malformed JSON, a body that is not JSON
    return sorted(codes)


def _error_response(code: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[code],
        "content": {"application/json": {"schema": ERROR_REF}},
    }
    if code == "429":
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds until the window resets",
                "required": True,
                "schema": {"type": "integer"},
            },
            **_RATE_HEADERS,
        }
    return response


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Attach the flat error body to every operation; drop FastAPI's HTTPValidationError."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Error"] = ERROR_SCHEMA
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            responses = operation.setdefault("responses", {})
            for code in error_codes(method, operation):
                if code not in responses or code == "422":
                    responses[code] = _error_response(code)
            for code, response in responses.items():
                # Route-specific failures (410, 503) are declared on the route, without a body.
                if code >= "400":
                    response.setdefault("content", {"application/json": {"schema": ERROR_REF}})
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve the corrected document at /openapi.json, generated once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    openapi_version=app.openapi_version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc with their scripts and styles served by this process."""
    app.mount(DOCS_STATIC_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-static")
    oauth2_redirect_url = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
            swagger_js_url=f"{root}{DOCS_STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_STATIC_URL}/favicon.png",
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )
