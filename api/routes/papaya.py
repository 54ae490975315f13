"""Papaya-style invoice API under /api: the same sessions and subscriptions as /v1."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Path, Query, Response

from api.deps import CheckoutDep, CurrentPrincipal, NowDep, SessionDep
from api.responses import model_response
from api.routing import both_slashes, make_router
from core.checkout import service as checkout_service
from core.checkout.schemas import InvoiceCreate, InvoiceDetailOut, InvoiceOut
from core.subscriptions import service as subscriptions_service
from core.subscriptions.schemas import PapayaSubscriptionOut, PapayaSubscriptionPage

router = make_router(tags=["papaya invoices"])
Int64Id = Annotated[int, Path(gt=0, le=2**63 - 1)]


@both_slashes(router, "POST", "/invoice", response_model=InvoiceOut)
async def create_invoice(
    body: InvoiceCreate, session: SessionDep, principal: CurrentPrincipal, context: CheckoutDep
) -> Response:
    """Create an invoice (no period) or a subscription link (PerDay/PerWeek/PerMonth/PerYear)."""
    checkout = await checkout_service.create_invoice(session, principal, context, body)
    return model_response(
        InvoiceOut(
            id=checkout.id,
            rate=checkout.price_usd,
            created_at=checkout.created_at,
            bot_url=context.bot_url(checkout.bot_token),
        )
    )


@router.get("/invoice/{invoice_id}", response_model=InvoiceDetailOut)
async def get_invoice(
    invoice_id: Int64Id, session: SessionDep, principal: CurrentPrincipal, context: CheckoutDep
) -> Response:
    """An invoice with its payer (Telegram id) and whether it is paid."""
    checkout = await checkout_service.get_session_by_id(session, principal, invoice_id)
    return model_response(checkout_service.invoice_view(context, checkout))


@both_slashes(router, "GET", "/subscriptions", response_model=PapayaSubscriptionPage)
async def list_subscriptions(
    session: SessionDep,
    principal: CurrentPrincipal,
    now: NowDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Response:
    """Subscriptions, oldest first, page by page."""
    rows, total = await subscriptions_service.page_papaya(
        session, principal, page=page, limit=limit
    )
    return model_response(
        PapayaSubscriptionPage(
            items=[subscriptions_service.papaya_view(s, now=now) for s in rows],
            total_count=total,
            page=page,
            limit=limit,
            total_pages=math.ceil(total / limit) if total else 0,
        )
    )


@router.get("/subscriptions/{subscription_id}", response_model=PapayaSubscriptionOut)
async def get_subscription(
    subscription_id: Int64Id, session: SessionDep, principal: CurrentPrincipal, now: NowDep
) -> Response:
    """One subscription: chain, token, tx, Telegram user, payer address, active or not."""
    subscription = await subscriptions_service.get_subscription_by_id(
        session, principal, subscription_id
    )
    return model_response(subscriptions_service.papaya_view(subscription, now=now))
