"""Text every database can store: no NUL characters, no unpaired surrogates.

PostgreSQL refuses NUL in text and JSON columns (`invalid byte sequence for encoding "UTF8"`),
and a lone surrogate (what the JSON escape `\\ud800` decodes to) has no UTF-8 form at all, so
neither driver can send it. Front doors refuse such input before it reaches a service.
"""

from __future__ import annotations

from typing import Any

Location = tuple[str | int, ...]


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must not contain unpaired surrogates"
    return None


def text_problems(value: Any) -> list[tuple[Location, str]]:
    """Each string in a parsed JSON value, keys included, that `text_problem` refuses, with
    where it is (a bad key is reported at the object that holds it). Iterative: a body nested
    as deep as the JSON parser allows must not exhaust the stack here."""
    found: list[tuple[Location, str]] = []
    pending: list[tuple[Location, Any]] = [((), value)]
    while pending:
        location, item = pending.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                found.append((location, problem))
        elif isinstance(item, dict):
            children: list[tuple[Location, Any]] = []
            for key, child in item.items():
                problem = text_problem(key) if isinstance(key, str) else None
                if problem:
                    found.append((location, problem))
                else:
                    children.append(((*location, key), child))
            pending.extend(reversed(children))
        elif isinstance(item, list | tuple):
            pending.extend(((*location, i), child) for i, child in reversed(list(enumerate(item))))
    return found
