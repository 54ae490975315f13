"""QBitFlow v1 payments, transaction info and subscriptions."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import CheckoutDep, CurrentPrincipal, NowDep, SessionDep
from api.responses import model_response
from api.routing import both_slashes, make_router
from core.checkout import service as checkout_service
from core.checkout.context import CheckoutContext
from core.models import Subscription
from core.orgs.schemas import MessageOut
from core.payments import service as payments_service
from core.payments.schemas import (
    CombinedPaymentPage,
    PaymentOut,
    PaymentPage,
    TransactionInfoOut,
)
from core.subscriptions import service as subscriptions_service
from core.subscriptions.schemas import (
    BillingCycleOut,
    CancelIn,
    IncreaseUnitsIn,
    PaygSubscriptionOut,
    SubscriptionHistoryOut,
    SubscriptionOut,
)

router = make_router(prefix="/transaction", tags=["payments and subscriptions"])
Uuid = Annotated[str, Path(min_length=1, max_length=36)]
Limit = Annotated[int | None, Query(ge=1, le=100, description="Page size (default 50)")]
Cursor = Annotated[str | None, Query(max_length=100, description="nextCursor of the previous page")]


@router.get("/payment/{payment_uuid}", response_model=PaymentOut)
async def get_payment(
    payment_uuid: Uuid, session: SessionDep, principal: CurrentPrincipal, context: CheckoutDep
) -> Response:
    """One credited transfer."""
    payment = await payments_service.get_payment(session, principal, payment_uuid)
    view = await payments_service.payment_view(session, context, payment)
    return model_response(payments_service.plain_payment(view))


@both_slashes(router, "GET", "/payments", response_model=PaymentPage)
async def list_payments(
    session: SessionDep,
    principal: CurrentPrincipal,
    context: CheckoutDep,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Response:
    """One-time payments, newest first (a session paid in two transfers has two)."""
    rows, next_cursor = await payments_service.page_payments(
        session, principal, limit=limit, cursor=cursor, one_time_only=True
    )
    items = [
        payments_service.plain_payment(view)
        for view in await payments_service.payment_views(session, context, rows)
    ]
    return model_response(PaymentPage(items=items, next_cursor=next_cursor))


@both_slashes(router, "GET", "/payments/combined", response_model=CombinedPaymentPage)
async def list_combined_payments(
    session: SessionDep,
    principal: CurrentPrincipal,
    context: CheckoutDep,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Response:
    """Every payment, one-time (`source: payment`) and subscription (`subscription_history`)."""
    rows, next_cursor = await payments_service.page_payments(
        session, principal, limit=limit, cursor=cursor, one_time_only=False
    )
    items = await payments_service.payment_views(session, context, rows)
    return model_response(CombinedPaymentPage(items=items, next_cursor=next_cursor))


@router.get("/info/{transaction_id}", response_model=TransactionInfoOut)
async def transaction_info(
    transaction_id: Annotated[
        str, Path(min_length=1, max_length=66, description="Payment uuid or tx hash")
    ],
    session: SessionDep,
    principal: CurrentPrincipal,
    context: CheckoutDep,
) -> Response:
    """Everything known of one payment: chain, token, tx, block, confirmations, amounts, fee split."""
    return model_response(
        await payments_service.transaction_info(session, principal, context, transaction_id)
    )


async def _subscription_response(
    session: AsyncSession, context: CheckoutContext, subscription: Subscription
) -> Response:
    view = await subscriptions_service.subscription_view(
        session, subscription, lambda c: checkout_service.currency_out(c, context)
    )
    return model_response(view)


@router.post(
    "/subscription/payg/increase-units-current-period",
    response_model=PaygSubscriptionOut,
    responses={
        409: {"description": "Not a pay-as-you-go subscription, or no longer live"},
        422: {"description": "The usage would bill beyond the product's maxSpendingPerPeriod"},
    },
)
async def increase_units_current_period(
    body: IncreaseUnitsIn,
    session: SessionDep,
    principal: CurrentPrincipal,
    context: CheckoutDep,
    now: NowDep,
) -> Response:
    """Pay-as-you-go: add usage units to the current period (billed at its end, unit price each)."""
    subscription = await subscriptions_service.increase_units(
        session,
        principal,
        body.subscription_uuid,
        body.increase_by_amount,
        policy=context.subscription_policy,
        now=now,
    )
    return await _subscription_response(session, context, subscription)


@router.get(
    "/subscription/{subscription_uuid}", response_model=SubscriptionOut | PaygSubscriptionOut
)
async def get_subscription(
    subscription_uuid: Uuid, session: SessionDep, principal: CurrentPrincipal, context: CheckoutDep
) -> Response:
    """A subscription (an expired one shows as cancelled + stopped, as QBitFlow v1 has no expired);
    a pay-as-you-go one with its units, cap and free credits (the SDK's PayAsYouGoSubscription)."""
    subscription = await subscriptions_service.get_subscription(
        session, principal, subscription_uuid
    )
    return await _subscription_response(session, context, subscription)


@router.get(
    "/subscription/history/{subscription_uuid}", response_model=list[SubscriptionHistoryOut]
)
async def subscription_history(
    subscription_uuid: Uuid, session: SessionDep, principal: CurrentPrincipal, context: CheckoutDep
) -> Response:
    """Its billing periods, oldest first: trial, paid, open (a renewal request or a
    pay-as-you-go bill), past due, unpaid (expired) or void (cancelled), each with what it bills,
    what was paid against it and those payments (the SDK's `get_payment_history`)."""
    subscription = await subscriptions_service.get_subscription(
        session, principal, subscription_uuid
    )
    return model_response(await subscriptions_service.history_view(session, context, subscription))


@router.post("/subscription/{subscription_uuid}/cancel", response_model=SubscriptionOut)
async def cancel_subscription(
    subscription_uuid: Uuid,
    session: SessionDep,
    principal: CurrentPrincipal,
    context: CheckoutDep,
    now: NowDep,
    body: CancelIn | None = None,
) -> Response:
    """Cancel a subscription: no more renewals; access ends at the end of the paid period
    (`{"when": "end-of-period"}`, the default) or at once (`"now"`). Refused (409) before its
    minimum number of periods."""
    when = body.when if body is not None else "end-of-period"
    subscription = await subscriptions_service.cancel(
        session,
        principal,
        subscription_uuid,
        force=False,
        now=now,
        at_period_end=when == "end-of-period",
    )
    return await _subscription_response(session, context, subscription)


@router.get("/subscription/processing/force-cancel/{subscription_uuid}", response_model=MessageOut)
async def force_cancel_subscription(
    subscription_uuid: Uuid, session: SessionDep, principal: CurrentPrincipal, now: NowDep
) -> Response:
    """Cancel a subscription at once, even before its minimum periods (the SDK's force_cancel)."""
    await subscriptions_service.cancel(session, principal, subscription_uuid, force=True, now=now)
    return model_response(MessageOut(message="Subscription cancelled"))


@router.get(
    "/subscription/processing/execute-billing/{subscription_uuid}",
    response_model=BillingCycleOut,
    responses={
        400: {"description": "A live subscription (test mode only)"},
        409: {"description": "Nothing left to bill (expired)"},
    },
)
async def execute_test_billing_cycle(
    subscription_uuid: Uuid,
    session: SessionDep,
    principal: CurrentPrincipal,
    context: CheckoutDep,
    now: NowDep,
) -> Response:
    """Test subscriptions: take the next billing step now, as if its deadline had come (renewal
    requested, past due, expired, or a cancelled one's end). Payments alone move nextBillingDate."""
    subscription, events = await subscriptions_service.execute_test_billing(
        session, principal, subscription_uuid, policy=context.subscription_policy, now=now
    )
    return model_response(
        BillingCycleOut(
            message=f"Billing step done: {', '.join(events) or 'reminders queued'}",
            status_link=f"{context.public_url}/v1/transaction/subscription/{subscription.uuid}",
            subscription_uuid=subscription.uuid,
            status=subscription.status,
            events=events,
            next_action_at=subscription.next_action_at,
        )
    )
