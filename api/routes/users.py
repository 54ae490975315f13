"""QBitFlow v1 users."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Response

from api.deps import CurrentPrincipal, NowDep, SessionDep
from api.responses import model_response
from api.routing import both_slashes, make_router
from core.orgs import service as orgs_service
from core.orgs.schemas import MessageOut, UserCreate, UserOut, UserUpdate
from core.telegram import links as telegram_links
from core.telegram.schemas import LinkCode

router = make_router(prefix="/user", tags=["users"])
UserId = Annotated[int, Path(gt=0, le=2**63 - 1, description="User id")]


@both_slashes(router, "POST", "", response_model=UserOut)
async def create_user(
    body: UserCreate, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Create a user in the caller's organization (admin or owner; only the owner creates admins)."""
    return model_response(
        UserOut.model_validate(await orgs_service.create_user(session, principal, body))
    )


@both_slashes(router, "GET", "", response_model=UserOut)
async def get_me(session: SessionDep, principal: CurrentPrincipal) -> Response:
    """The user the API key belongs to."""
    return model_response(UserOut.model_validate(await orgs_service.get_me(session, principal)))


@both_slashes(router, "GET", "/all", response_model=list[UserOut])
async def list_users(session: SessionDep, principal: CurrentPrincipal) -> Response:
    """All users of the organization (admin or owner)."""
    return model_response(
        [UserOut.model_validate(u) for u in await orgs_service.list_users(session, principal)]
    )


@router.post("/telegram-link", response_model=LinkCode, status_code=201)
async def create_telegram_link(
    session: SessionDep, principal: CurrentPrincipal, now: NowDep
) -> Response:
    """A one-time code to send the bot as `/link <code>` (10 minutes), in this key's mode."""
    link = await telegram_links.create_link_code(
        session,
        organization_id=principal.organization_id,
        user_id=principal.user_id,
        test=principal.test,
        now=now,
    )
    return model_response(link, status_code=201)


@router.get("/id/{user_id}", response_model=UserOut)
async def get_user(user_id: UserId, session: SessionDep, principal: CurrentPrincipal) -> Response:
    """A user of the organization by id (admin or owner, or yourself)."""
    return model_response(
        UserOut.model_validate(await orgs_service.get_user(session, principal, user_id))
    )


@router.put("/{user_id:int}", response_model=UserOut)  # :int, so PUT /user/all is a 405
async def update_user(
    user_id: UserId, body: UserUpdate, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Update a user; your own fee is ignored when you edit yourself."""
    return model_response(
        UserOut.model_validate(await orgs_service.update_user(session, principal, user_id, body))
    )


@router.delete("/{user_id:int}", response_model=MessageOut)
async def delete_user(
    user_id: UserId, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Delete a user and revoke its API keys (admin or owner)."""
    await orgs_service.delete_user(session, principal, user_id)
    return model_response(MessageOut(message="User deleted"))
