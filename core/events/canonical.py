"""QBitFlow's canonical JSON: the exact bytes a webhook body is stored, sent and signed as.

Keys sorted at every level, `,`/`:` separators, UTF-8 left literal except `<`, `>`, `&`
(escaped `\\u003c`, `\\u003e`, `\\u0026` like Go's encoding/json), whole numbers without `.0`.
Non-whole numbers are written the way a float prints them, and only when a float holds them
exactly: receivers (QBitFlow's SDKs among them) parse bodies into floats and re-serialize
before checking a signature, so any other number would not survive the round trip. Amounts
therefore travel as strings; `json_number` decides for the few numbers that stay numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


class NotCanonical(ValueError):
    """A value canonical JSON cannot carry as a number (NaN, infinity, inexact as a float)."""


def json_number(value: Decimal | int) -> Decimal | int | str:
    """`value` as a JSON number when it survives a float round trip, else as its exact string."""
    if isinstance(value, int):
        return value
    try:
        _normalise(value)
    except NotCanonical:
        return str(value)
    return value


def _normalise(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotCanonical("NaN and infinity are not JSON")
        return int(value) if value.is_integer() else value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise NotCanonical("NaN and infinity are not JSON")
        if value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        if Decimal(repr(as_float)) != value:
            raise NotCanonical(f"{value} is not exact as a float; send it as a string")
        return as_float
    if isinstance(value, Mapping):
        return {str(key): _normalise(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(item) for item in value]
    raise NotCanonical(f"{type(value).__name__} is not a JSON value")


def canonical_json(value: Any) -> str:
    """The canonical text of an already-decoded JSON value (floats or Decimals for numbers)."""
    rendered = json.dumps(
        _normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    # These three only ever occur inside strings in JSON text, so a plain replace is safe.
    return rendered.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
