"""`chainpay devnet` and the devnet mode of `chainpay serve` (no chains configured)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path

import httpx
import structlog
from sqlalchemy import select

from chain.devnet import running_devnet, transfer, write_chains_file
from core.chains import Chain, Token
from core.checkout.context import CreatedSession
from core.config import Settings
from core.db import create_engine, create_sessionmaker
from core.errors import AppError
from core.models import CheckoutSession, SessionQuote

CHAINS_FILE = Path("chainpay-devnet.toml")
STATE_DIR = Path(".chainpay-devnet")

log = structlog.get_logger(__name__)


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
                # Everything runs on this machine: webhooks may reach a local receiver
                # (`chainpay dev webhook-listen`); only test chains exist, so only test events.
                "webhooks_allow_private": True,
            }
        )


def pay_command(session_uuid: str, chain_id: int, token: str) -> str:
    """The command that pays a session on the devnet."""
    return f"chainpay devnet pay {session_uuid} --chain {chain_id} --token {token}"


def log_session_created(created: CreatedSession) -> None:
    """On the devnet, each new test session's checkout URL and the command that pays it."""
    if not created.test or not created.accepted:
        return
    chain_id, token = created.accepted[0]
    log.info(
        "devnet_session_created",
        session_uuid=created.uuid,
        organization_id=created.organization_id,
        link=created.link,
        pay_command=pay_command(created.uuid, chain_id, token),
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
        symbols = ", ".join(t.symbol for t in chain.tokens)
        raise AppError(f"chain {chain_id} has no token {token} (it has {symbols})")
    base_units = None if amount is None else _base_units(amount, wanted)
    _check_node(chain, settings)
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
    if base_units is None:
        if quote is None:
            raise AppError("this session does not accept that token; give --amount to send anyway")
        base_units = quote.amount_base_units
    return transfer(chain.rpc_urls[0], wanted.contract, checkout.deposit_address, base_units)


def _base_units(amount: str, token: Token) -> int:
    """`--amount` in token units (12.5 USDT) as base units, or what is wrong with it."""
    try:
        value = Decimal(amount.strip())
    except InvalidOperation as exc:
        raise AppError(
            f"--amount {amount!r} is not a number: give an amount of {token.symbol}, e.g. 12.5"
        ) from exc
    if not value.is_finite() or value <= 0:
        raise AppError(f"--amount must be more than 0 {token.symbol} (got {amount})")
    scaled = value.scaleb(token.decimals)
    if scaled != scaled.to_integral_value():
        raise AppError(
            f"--amount {amount} has more decimal places than {token.symbol} on chain "
            f"{token.chain_id} has ({token.decimals})"
        )
    return int(scaled)


def _check_node(chain: Chain, settings: Settings) -> None:
    """Ask the node its chain id first: a devnet that is not running is one clear line."""
    url = chain.rpc_urls[0]
    source = settings.chains_file or "the configuration"
    try:
        answer = httpx.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=10
        ).json()
        node_chain_id = int(answer["result"], 16)
    except httpx.TransportError as exc:
        raise AppError(
            f"nothing answers at {url} (chain {chain.id} in {source}).\n"
            "Start the devnet first: `chainpay devnet` or `chainpay serve`."
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise AppError(f"{url} (chain {chain.id} in {source}) is not a JSON-RPC node") from exc
    if node_chain_id != chain.id:
        raise AppError(
            f"the node at {url} runs chain {node_chain_id}, not {chain.id} (see {source})"
        )
