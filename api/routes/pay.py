"""The payer's link (`/pay/{uuid}`). The checkout page issue renders HTML; for now it is JSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Response

from api.deps import CheckoutDep, SessionDep
from api.responses import ExactJSONResponse
from api.routing import make_router
from core.checkout import service as checkout_service

router = make_router(tags=["payer"])


@router.get("/pay/{session_uuid}")
async def pay(
    session_uuid: Annotated[str, Path(min_length=1, max_length=36)],
    session: SessionDep,
    context: CheckoutDep,
) -> Response:
    """What a payer needs: amounts per token, the deposit address, status and expiry (no auth)."""
    checkout = await checkout_service.public_session(session, uuid=session_uuid)
    view = await checkout_service.session_view(session, context, checkout)
    public = view.model_dump(
        by_alias=True,
        include={
            "uuid",
            "product_name",
            "description",
            "price",
            "organization_name",
            "status",
            "underpaid",
            "overpaid",
            "late",
            "paid_usd",
            "remaining_usd",
            "expires_at",
            "deposit_address",
            "amounts",
            "bot_url",
            "options",
            "test",
        },
    )
    public["notice"] = (
        "Send only the listed tokens on the listed chains to this address. Native coins (ETH, BNB, "
        "POL, ...) and other tokens are not watched and will not be credited."
    )
    return ExactJSONResponse(public)
