"""Every failure leaves as one flat JSON shape: {"error": message, "code": code, "param": field}."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.responses import ExactJSONResponse
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
    return error_response(exc.status_code, exc.message, exc.code, exc.param)


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


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = "No such route"
    return error_response(exc.status_code, message, code, None)


async def _integrity_error(_request: Request, exc: Exception) -> Response:
    # Unique constraints are the last line against races the services' checks cannot see.
    log.info("integrity_error", error=str(exc.__cause__ or exc)[:200])
    return error_response(409, "The request conflicts with existing data", "conflict", None)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
