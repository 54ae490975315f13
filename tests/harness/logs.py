"""The structlog lines services write while a block runs (the suite otherwise logs warnings only)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog
from structlog.testing import capture_logs


@contextmanager
def captured_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every line at info and above, as its event dict (`event`, `log_level`, the fields)."""
    previous = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        with capture_logs() as lines:
            yield lines
    finally:
        structlog.configure(wrapper_class=previous)


def lines_of(
    lines: list[MutableMapping[str, Any]], event: str, **match: Any
) -> list[MutableMapping[str, Any]]:
    """The lines named `event` whose fields include `match`."""
    return [
        line
        for line in lines
        if line["event"] == event and all(line.get(k) == v for k, v in match.items())
    ]


def rendered(line: MutableMapping[str, Any]) -> str:
    """The line as JSON, after checking that every value is a str, int, bool or None: amounts
    must not reach the log as floats, nor as a Decimal's repr (JSONRenderer's fallback)."""
    for key, value in line.items():
        assert value is None or type(value) in (str, int, bool), (key, value)
    return json.dumps(line)
