"""The FastAPI application: routes under /v1, health, errors, middleware."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.checkout_page.view import STATIC_DIR, STATIC_URL
from api.errors import install_error_handlers
from api.guards import refuse_unstorable_parameters
from api.middleware import (
    BodyLimitMiddleware,
    IdempotencyMiddleware,
    RateLimitMiddleware,
    RequestContextMiddleware,
)
from api.openapi import install_docs, install_openapi
from api.responses import ExactJSONResponse
from api.routes import (
    api_keys,
    customers,
    health,
    papaya,
    pay,
    payments,
    products,
    sessions,
    users,
    wallet,
    webhooks,
)
from core import __version__
from core.checkout import service as checkout_service
from core.checkout.context import CheckoutContext
from core.config import Settings
from core.db import create_engine, create_sessionmaker, transaction
from core.webhooks.crypto import SecretBox
from core.webhooks.ssrf import Resolve, system_resolve

DESCRIPTION = (
    "Self-hosted stablecoin payments for Telegram merchants. The /v1 API follows QBitFlow's "
    "shapes, so the official QBitFlow SDK works against it unchanged. Authenticate with "
    "`X-API-Key: <key>` or HTTP Basic with the key as username."
)


def create_app(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    checkout_context: CheckoutContext | None = None,
    *,
    resolve: Resolve = system_resolve,
) -> FastAPI:
    """Build the app. Without a sessionmaker it opens (and closes) its own engine; without a
    checkout context it makes one from the settings (no contract reads, no getMe). `resolve`
    is the DNS lookup behind the webhook URL guard (tests give one with fixed answers)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = None
        if sessionmaker is None:
            engine = create_engine(settings.database_url)
            app.state.sessionmaker = create_sessionmaker(engine)
        else:
            app.state.sessionmaker = sessionmaker
        try:
            async with transaction(app.state.sessionmaker) as session:
                await checkout_service.sync_currencies(session, app.state.checkout_context)
            yield
        finally:
            if engine is not None:
                await engine.dispose()

    app = FastAPI(
        title="chainpay",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=ExactJSONResponse,
        redirect_slashes=False,
        dependencies=[Depends(refuse_unstorable_parameters)],
        docs_url=None,  # served by install_docs without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    context = checkout_context or CheckoutContext.from_settings(settings)
    if resolve is not system_resolve:
        context = dataclasses.replace(context, resolve=resolve)
    app.state.checkout_context = context
    app.state.clock = context.clock  # the process's one clock (core/clock.py)
    app.state.secret_box = SecretBox.from_settings(settings)
    app.state.resolve = resolve
    install_error_handlers(app)
    app.include_router(health.router)
    for module in (
        products,
        users,
        api_keys,
        customers,
        wallet,
        sessions,
        payments,
        webhooks,
    ):
        app.include_router(module.router, prefix="/v1")
    app.include_router(papaya.router, prefix="/api")
    app.include_router(pay.router)
    app.mount(STATIC_URL, pay.PageStatic(directory=STATIC_DIR), name="checkout-static")
    install_openapi(app)
    install_docs(app)

    # Added innermost first: the request context wraps everything.
    app.add_middleware(IdempotencyMiddleware, ttl=timedelta(hours=settings.idempotency_ttl_hours))
    app.add_middleware(RateLimitMiddleware, limit_per_minute=settings.rate_limit_per_minute)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    return app
