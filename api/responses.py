"""JSON in and out without floats: request numbers parse as Decimal, Decimals render as numbers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import simplejson
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from core import safe_json
from core.text import Location, text_problems


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class _PlainDecimal(Decimal):
    """A Decimal that prints without exponent notation (0.0000001, not 1E-7)."""

    def __str__(self) -> str:
        return format(self, "f")


_MAX_DEPTH = 32  # our own shapes are shallow; deeper is echoed metadata, left as parsed


def _plain_numbers(value: Any, depth: int = 0) -> Any:
    """`value` with every Decimal that str() would write with an exponent (1E-7, 1E+2) or a
    sign on zero (-0) replaced by one that prints plainly; other values are left as they are."""
    kind = type(value)
    if kind is dict and depth < _MAX_DEPTH:
        return {key: _plain_numbers(item, depth + 1) for key, item in value.items()}
    if (kind is list or kind is tuple) and depth < _MAX_DEPTH:
        return [_plain_numbers(item, depth + 1) for item in value]
    if isinstance(value, Decimal) and value.is_finite():
        if value.is_zero() and value.is_signed():
            value = value.copy_abs()
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and (exponent > 0 or value.adjusted() < -6):
            return _PlainDecimal(value)
    return value


def dumps(content: Any) -> bytes:
    """Exact JSON: Decimal('0.3') is written as the number 0.3, never through a float, and
    never in exponent notation."""
    return simplejson.dumps(
        _plain_numbers(content),
        use_decimal=True,
        default=_default,
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")


class ExactJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)


def model_response(model: BaseModel | Sequence[BaseModel], status_code: int = 200) -> Response:
    """Render wire models by their camelCase aliases."""
    if isinstance(model, BaseModel):
        content: Any = model.model_dump(mode="python", by_alias=True)
    else:
        content = [item.model_dump(mode="python", by_alias=True) for item in model]
    return ExactJSONResponse(content, status_code=status_code)


def _no_constants(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


class UnstorableText(StarletteHTTPException):
    """Strings in a JSON body that no database can store (NUL, lone surrogates), by location.

    An HTTPException so that FastAPI lets it out of body parsing unchanged (it turns any other
    exception there into a bare 400); api/errors.py answers it as the 422 of a validation error.
    """

    def __init__(self, problems: list[tuple[Location, str]]) -> None:
        super().__init__(status_code=422, detail=problems[0][1])
        self.problems = problems


class ExactJSONRequest(Request):
    """A request whose JSON body keeps every number exact (floats become Decimal), is strictly
    valid Unicode, and holds only text the databases can store."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                # Strict decoding: json.loads(bytes) would let encoded surrogates through.
                text = body.decode(json.detect_encoding(body))
            except UnicodeDecodeError as exc:
                doc = body.decode("utf-8", "replace")
                raise json.JSONDecodeError("invalid UTF-8", doc, exc.start) from exc
            try:
                # Depth-checked first: see core/safe_json.py (a deep body killed the process).
                parsed = safe_json.loads(text, parse_float=Decimal, parse_constant=_no_constants)
            except RecursionError as exc:
                raise json.JSONDecodeError("nested too deeply", text, 0) from exc
            problems = text_problems(parsed)
            if problems:
                raise UnstorableText(problems)
            self._json = parsed
        return self._json
