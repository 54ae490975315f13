"""Typed dependencies: the request's database session (one transaction) and the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPBasic
from sqlalchemy.ext.asyncio import AsyncSession

from api.middleware import presented_credential
from core.checkout.context import CheckoutContext
from core.clock import Clock
from core.errors import Unauthorized
from core.orgs import service as orgs_service
from core.orgs.schemas import Principal


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed before the response is sent, else rolled back."""
    async with request.app.state.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def get_now(request: Request) -> datetime:
    """The request's `now`, read once from the process's clock (every dependency shares it)."""
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
    return await orgs_service.authenticate(session, credential, now=now)


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def get_checkout_context(request: Request) -> CheckoutContext:
    context: CheckoutContext = request.app.state.checkout_context
    return context


CheckoutDep = Annotated[CheckoutContext, Depends(get_checkout_context)]
