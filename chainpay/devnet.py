"""`chainpay devnet` and the devnet mode of `chainpay serve` (no chains configured)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import select

from chain.devnet import running_devnet, transfer, write_chains_file
from core.config import Settings
from core.db import create_engine, create_sessionmaker
from core.errors import AppError
from core.models import CheckoutSession, SessionQuote

CHAINS_FILE = Path("chainpay-devnet.toml")
STATE_DIR = Path(".chainpay-devnet")


def needs_devnet(settings: Settings) -> bool:
    return not settings.chains and settings.chains_file is None


@contextmanager
def devnet_settings(settings: Settings, *, block_time: float = 1.0) -> Iterator[Settings]:
    """Two local anvil chains (state kept in .chainpay-devnet/) and settings that watch them."""
    with running_devnet(block_time=block_time, state_dir=STATE_DIR.resolve()) as devnet:
        path = write_chains_file(devnet, CHAINS_FILE.resolve())
        yield settings.model_copy(
            update={
                "chains_file": path,
                "watcher_start_block": 0,
                "watcher_poll_seconds": min(settings.watcher_poll_seconds, 1.0),
            }
        )


async def pay_session(
    settings: Settings, session_uuid: str, chain_id: int, token: str, amount: str | None
) -> str:
    """Pay a session from anvil's funded dev account; returns the transaction hash."""
    registry = settings.chain_registry()
    chain = registry.get(chain_id)
    if chain is None or not chain.rpc_urls:
        raise AppError(f"chain {chain_id} is not configured (is `chainpay devnet` running?)")
    wanted = chain.token(token)
    if wanted is None:
        raise AppError(f"chain {chain_id} has no token {token}")
    engine = create_engine(settings.database_url, pool=False)
    try:
        async with create_sessionmaker(engine)() as session:
            checkout = await session.scalar(
                select(CheckoutSession).where(CheckoutSession.uuid == session_uuid)
            )
            if checkout is None:
                raise AppError(f"no session {session_uuid}")
            quote = await session.scalar(
                select(SessionQuote).where(
                    SessionQuote.session_id == checkout.id,
                    SessionQuote.chain_id == chain_id,
                    SessionQuote.token_contract == wanted.contract,
                )
            )
    finally:
        await engine.dispose()
    if amount is None:
        if quote is None:
            raise AppError("this session does not accept that token; give --amount to send anyway")
        base_units = quote.amount_base_units
    else:
        try:
            scaled = Decimal(amount).scaleb(wanted.decimals)
        except InvalidOperation as exc:
            raise AppError(f"not a number: {amount}") from exc
        if scaled != scaled.to_integral_value() or scaled < 0:
            raise AppError(
                f"{amount} is not a whole number of base units at {wanted.decimals} decimals"
            )
        base_units = int(scaled)
    return transfer(chain.rpc_urls[0], wanted.contract, checkout.deposit_address, base_units)
