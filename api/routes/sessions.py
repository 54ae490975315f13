"""QBitFlow v1 checkout sessions and transaction status."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Path, Query, Response

from api.deps import CheckoutDep, CurrentPrincipal, NowDep, SessionDep, reads_only
from api.responses import model_response
from api.routing import both_slashes, make_router
from core.checkout import service as checkout_service
from core.checkout.exceptions import SessionNotOpen
from core.checkout.schemas import LinkOut, SessionCreate, SessionOut, TransactionStatusOut
from core.subscriptions import service as subscriptions_service
from core.subscriptions.schemas import SubscriptionOut, TrialStartIn

router = make_router(prefix="/transaction", tags=["sessions"])
SessionUUID = Annotated[str, Path(min_length=1, max_length=36, description="Session UUID")]
CLOSE_TO_EXPIRY = timedelta(minutes=1)


@both_slashes(router, "POST", "/session-checkout", response_model=LinkOut)
async def create_session(
    body: SessionCreate, session: SessionDep, principal: CurrentPrincipal, context: CheckoutDep
) -> Response:
    """Create a one-time or subscription checkout session with its own deposit address."""
    return model_response(await checkout_service.create_link(session, principal, context, body))


@router.get(
    "/session-checkout/{session_uuid}",
    response_model=SessionOut,
    responses={410: {"description": "closeToExpireError and the session is (about to be) expired"}},
)
@reads_only
async def get_session(
    session_uuid: SessionUUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    context: CheckoutDep,
    close_to_expire_error: Annotated[
        bool,
        Query(
            alias="closeToExpireError", description="410 when the session is (about to be) expired"
        ),
    ] = False,
) -> Response:
    """A session with its status, amounts per token and payment progress."""
    checkout = await checkout_service.get_session(session, principal, session_uuid)
    if close_to_expire_error and checkout.expires_at - context.clock.now() < CLOSE_TO_EXPIRY:
        raise SessionNotOpen(
            "This session is expired or about to expire",
            param="uuid",
            status_code=410,
            code="session_expiring",
        )
    return model_response(await checkout_service.session_view(session, context, checkout))


@router.post("/session-checkout/{session_uuid}/cancel", response_model=SessionOut)
async def cancel_session(
    session_uuid: SessionUUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    context: CheckoutDep,
    now: NowDep,
) -> Response:
    """Cancel an open session; money that still arrives is recorded and flagged late."""
    checkout = await checkout_service.cancel_session(session, principal, session_uuid, now=now)
    return model_response(await checkout_service.session_view(session, context, checkout))


@router.post(
    "/session-checkout/{session_uuid}/start",
    response_model=SubscriptionOut,
    responses={409: {"description": "No trial offered, trial already used, or already started"}},
)
async def start_trial(
    session_uuid: SessionUUID,
    body: TrialStartIn,
    session: SessionDep,
    principal: CurrentPrincipal,
    context: CheckoutDep,
    now: NowDep,
) -> Response:
    """Start a subscription session's free trial for a payer (for your own front end): a
    Telegram user and/or one of your customers. One trial per payer per product."""
    subscription = await subscriptions_service.start_for_payer(
        session,
        principal,
        session_uuid,
        telegram_user_id=body.telegram_user_id,
        customer_uuid=body.customer_uuid,
        now=now,
        policy=context.subscription_policy,
    )
    view = await subscriptions_service.subscription_view(
        session, subscription, lambda c: checkout_service.currency_out(c, context)
    )
    return model_response(view)


@both_slashes(router, "GET", "/status", response_model=TransactionStatusOut)
async def transaction_status(
    session: SessionDep,
    principal: CurrentPrincipal,
    transaction_uuid: Annotated[str, Query(alias="transactionUUID", min_length=1, max_length=36)],
    transaction_status_type: Annotated[
        str,
        Query(
            alias="transactionStatusType",
            max_length=40,
            description="payment, createSubscription, …",
        ),
    ] = "payment",
) -> Response:
    """Status of a session (`payment`, `createSubscription`) or subscription action."""
    status = await subscriptions_service.transaction_status(
        session, principal, transaction_uuid, transaction_status_type
    )
    return model_response(status)
