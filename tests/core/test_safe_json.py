"""JSON from outside is depth-checked before the recursive parser sees it (core/safe_json.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from chain.rpc import _parse_fast
from core.safe_json import MAX_DEPTH, json_depth, loads


@pytest.fixture
def web3_recursion_limit() -> Iterator[None]:
    """What importing web3 (py_ecc) does to the process: a recursion limit of 100,000."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 100_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("[]", 1),
        ('{"a":[1,{"b":"[[[["}]}', 3),
        ('["a\\\\",["]"]]', 2),  # an escaped backslash ends the string before its quote
        ('"[\\"["', 0),
        ("", 0),
    ],
)
def test_depth_counts_brackets_outside_strings(text: str, depth: int) -> None:
    assert json_depth(text, limit=0) == depth


def test_text_with_few_brackets_is_not_scanned() -> None:
    assert json_depth('{"a": [1, 2]}') == MAX_DEPTH
    assert json_depth(b'{"a": [1, 2]}') == MAX_DEPTH


@pytest.mark.usefixtures("web3_recursion_limit")
@pytest.mark.parametrize("raw", [b"[" * 200_000, "[" * 200_000, b'{"a":' * 100_000 + b"1"])
def test_deep_json_is_refused_not_a_crash(raw: str | bytes) -> None:
    with pytest.raises(json.JSONDecodeError, match="nested deeper than 64 levels"):
        loads(raw)


@pytest.mark.usefixtures("web3_recursion_limit")
def test_an_rpc_answer_nested_past_orjsons_limit_is_an_error_not_a_crash() -> None:
    # orjson refuses past 1,024 levels; its fallback (the standard parser) must not recurse.
    with pytest.raises(ValueError, match="nested deeper"):
        _parse_fast(b'{"result":' + b"[" * 200_000 + b"]" * 200_000 + b"}")


def test_json_as_deep_as_allowed_parses() -> None:
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert json_depth(text) == MAX_DEPTH
    assert loads(text) == json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        loads("[" + text + "]")
