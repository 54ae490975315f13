"""The organization's receiving wallet (account xpub)."""

from __future__ import annotations

from fastapi import Response

from api.deps import CurrentPrincipal, SessionDep
from api.responses import model_response
from api.routing import both_slashes, make_router
from core.wallet import service as wallet_service
from core.wallet.schemas import WalletOut, WalletSet, wallet_out

router = make_router(prefix="/wallet", tags=["wallet"])


@both_slashes(router, "GET", "", response_model=WalletOut)
async def get_wallet(session: SessionDep, principal: CurrentPrincipal) -> Response:
    """The account xpub deposit addresses are derived from (m/44'/60'/0'/0/i)."""
    return model_response(wallet_out(await wallet_service.get_wallet(session, principal)))


@both_slashes(router, "PUT", "", response_model=WalletOut)
async def set_wallet(body: WalletSet, session: SessionDep, principal: CurrentPrincipal) -> Response:
    """Register the account xpub (admin or owner). Never send a private key: only the xpub."""
    return model_response(
        wallet_out(await wallet_service.set_xpub_as(session, principal, body.xpub))
    )
