"""App-wide request checks that run on every route before its own parameters are read."""

from __future__ import annotations

from fastapi import Request

from core.errors import InvalidInput, NotFound
from core.text import text_problem


# async: FastAPI runs a plain-def dependency in its thread pool, a thread hop per request.
async def refuse_unstorable_parameters(request: Request) -> None:
    """NUL in a path or query parameter: no row can match it (PostgreSQL cannot even be asked),
    so a path lookup is 404 and a query parameter 422. JSON bodies are checked as they are
    parsed (api/responses.py)."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and text_problem(value):
            raise NotFound(f"No object matches this {name}", param=name)
    for name, value in request.query_params.multi_items():
        problem = text_problem(name) or text_problem(value)
        if problem:
            param = name.replace("\x00", "\\u0000")
            raise InvalidInput(f"{param}: {problem}", param=param)
