"""What the `chainpay` command says when it fails: a line or two, not a traceback.

Configuration errors (exit 2) name the file or variable, the key and the fix; runtime errors
(exit 1) name the URL that did not answer. Anything else is a bug and keeps its traceback.
This module imports nothing heavy: an exception type whose module was never imported cannot
have been raised, so those are looked up in sys.modules.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from core.errors import AppError

CONFIGURATION = 2
RUNTIME = 1

_DATABASE_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "alembic", "psycopg")


@dataclass(frozen=True)
class Problem:
    lines: tuple[str, ...]
    exit_code: int


def explain(exc: BaseException, *, database_url: str | None = None) -> Problem | None:
    """The short story of `exc`, or None when it is not a configuration or connection error."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = explain(inner, database_url=database_url)
            if found is not None:
                return found
        return None
    configuration_error = _type("core.chains", "ConfigurationError")
    devnet_error = _type("chain.devnet", "DevnetError")
    # Only what `exc` was raised from counts: a bug raised while handling an error stays a bug.
    causes = list(_links(exc, explicit_only=True))
    links = list(_links(exc))
    for link in causes:
        if configuration_error is not None and isinstance(link, configuration_error):
            return Problem(tuple(str(link).splitlines()), CONFIGURATION)
        if isinstance(link, tomllib.TOMLDecodeError):
            return Problem((f"not valid TOML: {link}",), CONFIGURATION)
        if isinstance(link, AppError):
            return Problem(tuple(link.message.splitlines()), RUNTIME)
        if devnet_error is not None and isinstance(link, devnet_error):
            return Problem((f"devnet: {link}",), RUNTIME)
    reason = _connection_failure(causes, links)
    if reason is not None:
        url = _url(links)
        if url is not None:
            return Problem(
                (
                    f"cannot reach {url}: {reason}",
                    "Check that it is running and that the URL in your configuration is right.",
                ),
                RUNTIME,
            )
        if _through(links, _DATABASE_MODULES):
            return _database_problem(reason, database_url)
        return Problem((f"connection failed: {reason}",), RUNTIME)
    operational = _type("sqlalchemy.exc", "OperationalError")
    if operational is not None and isinstance(exc, operational):
        return _database_problem(str(getattr(exc, "orig", exc)), database_url)
    return None


def debug_requested(settings: Any) -> bool:
    """CHAINPAY_LOG_LEVEL=debug (or log_level in the settings read) shows tracebacks too.

    Read from the environment directly: the settings may be what failed to load."""
    if settings is not None and str(settings.log_level).lower() == "debug":
        return True
    return os.environ.get("CHAINPAY_LOG_LEVEL", "").strip().lower() == "debug"


def _database_problem(reason: str, database_url: str | None) -> Problem:
    from core.config import setting_origin

    target = f" {redact(database_url)}" if database_url else ""
    return Problem(
        (
            f"cannot use the database{target}: {reason}",
            f"Check database_url ({setting_origin('database_url')}) and that the database "
            "server is running.",
        ),
        RUNTIME,
    )


def redact(url: str) -> str:
    """The URL without its password."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _type(module: str, name: str) -> type[BaseException] | None:
    loaded = sys.modules.get(module)
    found = getattr(loaded, name, None) if loaded is not None else None
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def _links(exc: BaseException, *, explicit_only: bool = False) -> Iterator[BaseException]:
    """`exc` and what it was raised from (and while handling, unless `explicit_only`)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ if explicit_only else (current.__cause__ or current.__context__)


def _connection_failure(causes: list[BaseException], links: list[BaseException]) -> str | None:
    """Why a connection failed ('Connection refused'), when one did."""
    connection_types: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, name in (
        ("socket", "gaierror"),
        ("requests.exceptions", "ConnectionError"),
        ("httpx", "TransportError"),
        ("aiohttp", "ClientConnectionError"),
    ):
        found = _type(module, name)
        if found is not None:
            connection_types.append(found)
    if not any(isinstance(link, tuple(connection_types)) for link in causes):
        return None
    # The innermost OS error says it plainly ("Connection refused"); wrappers add noise.
    for link in reversed(links):
        if isinstance(link, OSError) and link.strerror:
            return link.strerror
    return str(links[-1]) or type(links[-1]).__name__


def _url(links: list[BaseException]) -> str | None:
    for link in links:
        request = _attribute(link, "request")
        url = _attribute(request, "url") if request is not None else None
        if url:
            return str(url)
        host = _attribute(link, "host")
        port = _attribute(link, "port")
        if isinstance(host, str) and port is not None:
            return f"{host}:{port}"
    return None


def _attribute(value: Any, name: str) -> Any:
    try:
        return getattr(value, name, None)
    except Exception:  # httpx raises when an exception carries no request
        return None


def _through(links: list[BaseException], modules: tuple[str, ...]) -> bool:
    """Whether any of the exceptions passed through code of these packages."""
    for link in links:
        tb: TracebackType | None = link.__traceback__
        while tb is not None:
            name = str(tb.tb_frame.f_globals.get("__name__", ""))
            if name.split(".")[0] in modules:
                return True
            tb = tb.tb_next
    return False
