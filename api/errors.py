"""Every failure leaves as one flat JSON shape: {"error": message, "code": code, "param": field}."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from api.responses import ExactJSONResponse, UnstorableText
from core.errors import AppError

log = structlog.get_logger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
}


def error_body(message: str, code: str, param: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": message, "code": code, "param": param, **extra}


def error_response(
    status_code: int, message: str, code: str, param: str | None = None, **extra: Any
) -> Response:
    return ExactJSONResponse(error_body(message, code, param, **extra), status_code=status_code)


def _param_of(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc[1:] if not isinstance(p, int)] if loc else []
    if loc and loc[0] == "header" and parts:
        return parts[0]
    return ".".join(parts) or None


def _message_of(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


async def _app_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    if exc.status_code == 422:
        # A check a service makes by hand answers in the same shape as a pydantic one.
        errors = [{"param": exc.param, "error": exc.message}]
        return error_response(422, exc.message, exc.code, exc.param, errors=errors)
    return error_response(exc.status_code, exc.message, exc.code, exc.param)


async def _unstorable_text(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UnstorableText)
    details: list[dict[str, str | None]] = []
    for location, problem in exc.problems:
        param = ".".join(str(part) for part in location if not isinstance(part, int)) or "body"
        details.append({"param": param, "error": f"{param}: {problem}"})
    first = details[0]
    return error_response(422, str(first["error"]), "invalid_input", first["param"], errors=details)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "Malformed JSON in request body", "invalid_json", "body")
    details: list[dict[str, str | None]] = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        param = _param_of(loc)
        if loc == ("body",) and error.get("type") == "missing":
            message = "A JSON request body is required"
        elif loc == ("body",):
            message = "The request body must be a JSON object"
        else:
            message = f"{param}: {_message_of(error)}" if param else _message_of(error)
        details.append({"param": param, "error": message})
    first = details[0] if details else {"param": None, "error": "Invalid request"}
    return error_response(422, str(first["error"]), "invalid_input", first["param"], errors=details)


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's 405 names only one route's)."""
    routes = [r for r in request.app.router.routes if not isinstance(r, Mount)]
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = "No such route"
    if exc.status_code == 405:
        message = f"{request.method} is not allowed here"
    response = error_response(exc.status_code, message, code, None)
    if exc.status_code == 405:
        # RFC 9110: a 405 lists the methods the resource does support.
        fallback = (exc.headers or {}).get("Allow", "GET, HEAD")  # static files
        response.headers["Allow"] = ", ".join(allowed_methods(request)) or fallback
    return response


async def _integrity_error(_request: Request, exc: Exception) -> Response:
    # Unique constraints are the last line against races the services' checks cannot see.
    log.info("integrity_error", error=str(exc.__cause__ or exc)[:200])
    return error_response(409, "The request conflicts with existing data", "conflict", None)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(UnstorableText, _unstorable_text)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
