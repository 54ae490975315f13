"""QBitFlow v1 API keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import Path, Response

from api.deps import CurrentPrincipal, NowDep, SessionDep
from api.responses import model_response
from api.routing import both_slashes, make_router
from core.models import ApiKey
from core.orgs import service as orgs_service
from core.orgs.schemas import (
    ApiKeyCreate,
    ApiKeyOut,
    CreatedApiKey,
    MessageOut,
    Role,
    api_key_out,
)

router = make_router(prefix="/api-key", tags=["api keys"])
PositiveId = Annotated[int, Path(gt=0, le=2**63 - 1)]


def _listing(keys: Sequence[ApiKey], role: Role) -> Response:
    return model_response([api_key_out(k, role) for k in keys])


@both_slashes(router, "POST", "", response_model=CreatedApiKey)
async def create_api_key(
    body: ApiKeyCreate, session: SessionDep, principal: CurrentPrincipal, now: NowDep
) -> Response:
    """Create a key for yourself (or, as admin/owner, for a user of the org); the key is shown once."""
    key, raw, role = await orgs_service.create_api_key(session, principal, body, now=now)
    return model_response(CreatedApiKey(data=api_key_out(key, role), key=raw))


@both_slashes(router, "GET", "", response_model=list[ApiKeyOut])
async def list_my_keys(session: SessionDep, principal: CurrentPrincipal) -> Response:
    """Your live API keys (name, role, preview, dates; never the key)."""
    return _listing(*await orgs_service.list_my_keys(session, principal))


@router.get("/user/{user_id}", response_model=list[ApiKeyOut])
async def list_user_keys(
    user_id: PositiveId, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """A user's live API keys (admin or owner, or yourself)."""
    return _listing(*await orgs_service.list_user_keys(session, principal, user_id))


@router.delete("/{key_id}", response_model=MessageOut)
async def revoke_api_key(
    key_id: PositiveId, session: SessionDep, principal: CurrentPrincipal, now: NowDep
) -> Response:
    """Revoke an API key; it stops working at once."""
    await orgs_service.revoke_api_key(session, principal, key_id, now=now)
    return model_response(MessageOut(message="API key deleted"))
