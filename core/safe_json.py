"""JSON from outside the process (request bodies, RPC answers) parsed without risking the stack.

The standard parser recurses once per nesting level on the C stack, bounded only by
sys.getrecursionlimit(); importing web3 (py_ecc) raises that to 100,000, so a few hundred KB
of '[' overflow the stack and kill the whole process (API, watchers, sender) with a
segmentation fault instead of an exception. Nesting is therefore measured before parsing.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 64
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)  # possessive: linear, no backtracking
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str | bytes, limit: int = MAX_DEPTH) -> int:
    """How deeply arrays and objects nest in JSON `text` (brackets inside strings don't count),
    or `limit` when it holds too few brackets to nest deeper than that (no scan needed)."""
    if isinstance(text, bytes):
        if text.count(b"[") + text.count(b"{") <= limit:
            return limit
        text = text.decode("utf-8", "replace")
    elif text.count("[") + text.count("{") <= limit:
        return limit
    brackets = _NOT_A_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, **options: Any) -> Any:
    """`json.loads(text, **options)`, refusing (JSONDecodeError) anything nested deeper than
    `max_depth` before the parser sees it."""
    if json_depth(text, max_depth) > max_depth:
        doc = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise json.JSONDecodeError(f"nested deeper than {max_depth} levels", doc, 0)
    return json.loads(text, **options)
