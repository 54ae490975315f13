"""What a process learns once at start-up: token decimals from contracts, the bot's username."""

from __future__ import annotations

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chain.tokens import read_decimals
from core.chains import ChainConfig, ConfigurationError, TokenConfig, tokens_without_decimals
from core.checkout import service as checkout_service
from core.checkout.context import CheckoutContext
from core.clock import Clock
from core.config import Settings
from core.db import create_engine, create_sessionmaker, transaction

log = structlog.get_logger(__name__)


async def checkout_context(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    *,
    clock: Clock | None = None,
) -> CheckoutContext:
    """The checkout context, with decimals() read (and cached in the database) for tokens
    configured without them, and the bot's username from getMe when only its token is given.

    `sessionmaker` is the process's own (its one engine); without one, a connection is opened
    for the decimals cache and closed again. `clock` is the process's (default: the system's)."""
    decimals: dict[tuple[int, str], int] = {}
    missing = tokens_without_decimals(settings.chain_configs())
    if missing and sessionmaker is not None:
        decimals = await _token_decimals(sessionmaker, missing)
    elif missing:
        engine = create_engine(settings.database_url, pool=False)
        try:
            decimals = await _token_decimals(create_sessionmaker(engine), missing)
        finally:
            await engine.dispose()
    username = None
    if not settings.telegram_bot_username and settings.telegram_bot_token:
        username = await bot_username(settings)
    return CheckoutContext.from_settings(
        settings, decimals=decimals, bot_username=username, clock=clock
    )


async def _token_decimals(
    sessionmaker: async_sessionmaker[AsyncSession],
    missing: list[tuple[ChainConfig, TokenConfig]],
) -> dict[tuple[int, str], int]:
    """decimals() of each token, from the database's cache or else from its contract."""
    decimals: dict[tuple[int, str], int] = {}
    async with sessionmaker() as session:
        cached = await checkout_service.cached_decimals(session)
    for config, token in missing:
        key = (config.id, token.contract.lower())
        if key in cached:
            decimals[key] = cached[key]
            continue
        if not config.rpc_urls:
            raise ConfigurationError(
                f"chain {config.id} token {token.symbol}: no decimals and no RPC URL"
            )
        try:
            decimals[key] = await read_decimals(list(config.rpc_urls), token.contract)
        except Exception as exc:
            raise ConfigurationError(
                f"chain {config.id} token {token.symbol}: could not read decimals(): {exc}"
            ) from exc
        async with transaction(sessionmaker) as session:
            await checkout_service.remember_decimals(
                session,
                chain_id=config.id,
                contract=token.contract,
                symbol=token.symbol,
                decimals=decimals[key],
                test=config.test,
            )
        log.info(
            "token_decimals_read",
            chain_id=config.id,
            token=token.symbol,
            decimals=decimals[key],
        )
    return decimals


async def bot_username(settings: Settings) -> str | None:
    """getMe on the Bot API; None (and a warning) when Telegram cannot be reached."""
    url = f"{settings.telegram_api_url.rstrip('/')}/bot{settings.telegram_bot_token}/getMe"
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            body = (await client.get(url)).json()
    except (httpx.HTTPError, ValueError):
        log.warning("telegram_getme_failed")
        return None
    if not body.get("ok"):
        log.warning("telegram_getme_refused", description=str(body.get("description", ""))[:100])
        return None
    username = body.get("result", {}).get("username")
    return str(username) if username else None
