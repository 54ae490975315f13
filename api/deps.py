"""Typed dependencies: the request's database session (one transaction) and the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPBasic
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.middleware import presented_credential
from core.checkout.context import CheckoutContext
from core.clock import Clock
from core.db import read_only_sessionmaker, transaction
from core.errors import Unauthorized
from core.orgs import service as orgs_service
from core.orgs.schemas import Principal

_READS_ONLY = "__chainpay_reads_only__"
_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


def reads_only(endpoint: _Endpoint) -> _Endpoint:
    """Mark a route whose transaction never writes: on SQLite it then reads beside the writers
    (a deferred BEGIN under WAL) instead of queueing for the write lock with them."""
    setattr(endpoint, _READS_ONLY, True)
    return endpoint


def _reads_only(request: Request) -> bool:
    return bool(getattr(request.scope.get("endpoint"), _READS_ONLY, False))


def _read_only_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    state = request.app.state
    source = state.sessionmaker
    cached = getattr(state, "read_only_sessionmaker", None)
    if cached is None or cached[0] is not source:
        cached = state.read_only_sessionmaker = (source, read_only_sessionmaker(source))
    maker: async_sessionmaker[AsyncSession] = cached[1]
    return maker


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed before the response is sent, else rolled back."""
    if _reads_only(request):
        sessionmaker = _read_only_sessionmaker(request)
    else:
        sessionmaker = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_now(request: Request) -> datetime:
    """The request's `now`, read once from the process's clock (every dependency shares it).

    async, as every dependency here: FastAPI runs a plain def in its thread pool (a thread hop
    per dependency per request)."""
    clock: Clock = request.app.state.clock
    return clock.now()


NowDep = Annotated[datetime, Depends(get_now)]


class _DocumentedBasic(HTTPBasic):
    """HTTP Basic in the OpenAPI document only: parsing is `presented_credential`'s.

    FastAPI's HTTPBasic answers 401 to a malformed Authorization header even with
    auto_error=False, before X-API-Key is looked at; X-API-Key wins when present.
    """

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


# Declared for the OpenAPI document only; the credential is read from the raw headers below.
_api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="Your API key")
_basic_scheme = _DocumentedBasic(
    scheme_name="HTTPBasic", auto_error=False, description="API key as username, empty password"
)


async def authenticate(
    request: Request,
    session: SessionDep,
    now: NowDep,
    _key: Annotated[str | None, Depends(_api_key_scheme)] = None,
    _basic: Annotated[object | None, Depends(_basic_scheme)] = None,
) -> Principal:
    credential = presented_credential(request.scope)
    if credential is None and request.headers.get("authorization", "")[:6].lower() == "basic ":
        raise Unauthorized(
            "Malformed HTTP Basic credentials: send base64 of '<api key>:' (or use X-API-Key)",
            param="Authorization",
            code="invalid_api_key",
        )
    if credential is None:
        raise Unauthorized(
            "Missing API key: send it as X-API-Key or as the HTTP Basic username",
            param="X-API-Key",
            code="missing_api_key",
        )
    principal, use_due = await orgs_service.identify(session, credential, now=now)
    if use_due and not _reads_only(request):
        await orgs_service.record_key_use(session, principal.api_key_id, now=now)
    elif use_due:
        # A read-only route's transaction must not write (on SQLite it holds no write lock):
        # the last use (once a minute per key) goes in a transaction of its own.
        async with transaction(request.app.state.sessionmaker) as own:
            await orgs_service.record_key_use(own, principal.api_key_id, now=now)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


async def get_checkout_context(request: Request) -> CheckoutContext:
    context: CheckoutContext = request.app.state.checkout_context
    return context


CheckoutDep = Annotated[CheckoutContext, Depends(get_checkout_context)]
