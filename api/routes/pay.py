"""The payer's link (`/pay/{uuid}`): the checkout page for a browser, JSON for everyone else
(`Accept: application/json`, curl, SDKs), and the page's live status (SSE and polling)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from api.checkout_page import page as page_service
from api.checkout_page.view import (
    PageQuery,
    choose_language,
    render_claim,
    render_live,
    render_not_found,
    render_page,
    security_headers,
    wants_html,
)
from api.deps import CheckoutDep, NowDep, SessionDep, reads_only
from api.responses import ExactJSONResponse
from api.routing import ExactJSONRoute
from core.checkout import service as checkout_service
from core.config import Settings
from core.db import read_only_sessionmaker
from core.errors import AppError
from core.schemas import CamelModel


def not_found_page(request: Request) -> HTMLResponse:
    """The friendly 404 a browser gets for any link that leads to no session."""
    language = choose_language(
        request.query_params.get("lang"), request.headers.get("accept-language")
    )
    return HTMLResponse(render_not_found(language), status_code=404, headers=security_headers())


class PageRoute(ExactJSONRoute):
    """A browser's failed request gets the page's 404 (no JSON, no trace); others keep the
    JSON error bodies (api/errors.py)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except (AppError, StarletteHTTPException, RequestValidationError):
                if not wants_html(request.headers.get("accept")):
                    raise
                return not_found_page(request)

        return page_handler


class PageStatic(StaticFiles):
    """The page's script and stylesheet, never sniffed as another type."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "public, max-age=300"
        return response


router = APIRouter(route_class=PageRoute, tags=["payer"])
SessionUUID = Annotated[str, Path(min_length=1, max_length=36)]


@router.get("/pay/{session_uuid}")
@reads_only
async def pay(
    session_uuid: SessionUUID,
    request: Request,
    session: SessionDep,
    context: CheckoutDep,
    now: NowDep,
) -> Response:
    """What a payer needs: amounts per token, the deposit address, status and expiry (no auth).

    A browser (`Accept: text/html`) gets the checkout page instead."""
    checkout = await checkout_service.public_session(session, uuid=session_uuid)
    if wants_html(request.headers.get("accept")):
        query = PageQuery.parse(request.query_params, request.headers.get("accept-language"))
        data = await page_service.page_data(session, context, checkout, now=now)
        return HTMLResponse(
            render_page(data, query, now), headers=security_headers(mini_app=query.mini_app)
        )
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


@router.get("/pay/{session_uuid}/status", include_in_schema=False)
@reads_only
async def page_status(
    session_uuid: SessionUUID,
    request: Request,
    session: SessionDep,
    context: CheckoutDep,
    now: NowDep,
) -> Response:
    """The page's live part now (the polling fallback of the event stream)."""
    checkout = await checkout_service.public_session(session, uuid=session_uuid)
    query = PageQuery.parse(request.query_params, request.headers.get("accept-language"))
    data = await page_service.page_data(session, context, checkout, now=now)
    live = render_live(data, query, now)
    return ExactJSONResponse(live.payload(), headers={"Cache-Control": "no-store"})


@router.get("/pay/{session_uuid}/events", include_in_schema=False)
@reads_only
async def page_events(
    session_uuid: SessionUUID, request: Request, session: SessionDep, context: CheckoutDep
) -> Response:
    """The page's live part as Server-Sent Events, until the session is final."""
    checkout = await checkout_service.public_session(session, uuid=session_uuid)
    query = PageQuery.parse(request.query_params, request.headers.get("accept-language"))
    last = request.headers.get("last-event-id", "")
    stream = page_service.live_events(
        read_only_sessionmaker(request.app.state.sessionmaker),
        context,
        checkout.id,
        query,
        last_event_id=int(last) if last.isascii() and last.isdigit() and len(last) < 19 else 0,
    )
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post("/pay/{session_uuid}/claim", include_in_schema=False)
async def claim(
    session_uuid: SessionUUID,
    request: Request,
    session: SessionDep,
    context: CheckoutDep,
    now: NowDep,
) -> Response:
    """A one-time Telegram link for a subscription paid on the page (`/start claim-<token>`)."""
    checkout = await checkout_service.public_session(session, uuid=session_uuid)
    query = PageQuery.parse(request.query_params, request.headers.get("accept-language"))
    url = await page_service.claim_link(session, context, checkout, now=now)
    if url is None:  # nothing (more) to bind: back to the page
        return RedirectResponse(f"/pay/{checkout.uuid}?{query.query()}", status_code=303)
    return HTMLResponse(
        render_claim(query.language, url, checkout.product_name),
        headers=security_headers(mini_app=query.mini_app),
    )


class MiniAppIn(CamelModel):
    init_data: Annotated[str, Field(min_length=1, max_length=8192)]


@router.post("/pay/{session_uuid}/telegram", include_in_schema=False)
async def telegram(
    session_uuid: SessionUUID,
    body: MiniAppIn,
    request: Request,
    session: SessionDep,
    context: CheckoutDep,
    now: NowDep,
) -> Response:
    """The page opened as a Telegram Mini App: its signed initData binds the session to the
    Telegram user, as the bot's `/start` does (refused: the page stays a plain web page)."""
    checkout = await checkout_service.public_session(session, uuid=session_uuid)
    settings: Settings = request.app.state.settings
    await page_service.bind_telegram(
        session, checkout, body.init_data, bot_token=settings.telegram_bot_token, now=now
    )
    return ExactJSONResponse({"bound": True})


@router.get("/pay/{rest:path}", include_in_schema=False)
async def no_such_page(rest: str) -> Response:
    """Anything else under /pay/: the page's 404 for a browser, the usual JSON 404 otherwise."""
    raise StarletteHTTPException(status_code=404)
