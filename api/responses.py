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


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(content: Any) -> bytes:
    """Exact JSON: Decimal('0.3') is written as the number 0.3, never through a float."""
    return simplejson.dumps(
        content, use_decimal=True, default=_default, ensure_ascii=False, separators=(",", ":")
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


class ExactJSONRequest(Request):
    """A request whose JSON body keeps every number exact (floats become Decimal)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = json.loads(body, parse_float=Decimal, parse_constant=_no_constants)
        return self._json
