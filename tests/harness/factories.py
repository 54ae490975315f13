"""Plain factory functions: tenants through the real bootstrap service, the rest over HTTP."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from chainpay.bootstrap import NewOrganization, create_organization
from core.chains import ChainConfig, TokenConfig
from core.checkout.context import CheckoutContext
from core.config import Settings
from core.db import create_engine, create_sessionmaker, transaction
from core.payments import ingest as payments_ingest
from core.payments.schemas import Transfer
from core.wallet import service as wallet_service
from core.wallet.derivation import account_xpub_from_mnemonic, generate_dev_mnemonic


@dataclass(frozen=True)
class Tenant:
    organization_id: int
    owner_id: int
    owner_email: str
    key: str
    webhook_secret: str = ""  # the organization's default secret (sessions' webhookUrl)


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@shop.example"


# Chains the API tests accept: two test networks (6 and 18 decimals) and Ethereum mainnet (live).
# RPC URLs are never called by the API; the chain-watcher tests use real anvil nodes.
DEVNET_A_USDT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DEVNET_B_USDT = DEVNET_A_USDT  # the first contract anvil's dev account deploys, on either chain
TEST_CHAINS = [
    ChainConfig(
        id=31337,
        name="Devnet A",
        rpc_urls=("http://127.0.0.1:9",),
        confirmations=2,
        test=True,
        tokens=(TokenConfig(symbol="USDT", contract=DEVNET_A_USDT, decimals=6),),
    ),
    ChainConfig(
        id=31338,
        name="Devnet B",
        rpc_urls=("http://127.0.0.1:9",),
        confirmations=2,
        test=True,
        tokens=(TokenConfig(symbol="USDT", contract=DEVNET_B_USDT, decimals=18),),
    ),
    ChainConfig(id=1, rpc_urls=("http://127.0.0.1:9",)),
]


# Fernet key for secrets at rest in tests (conftest also exports it for child processes).
TEST_SECRET_KEY = "tQUYs1I6NT9-Z0sAk9p37H8oE4wd3m5SwvbtRpwFbHU="


def test_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "rate_limit_per_minute": 0,
        "chains": TEST_CHAINS,
        "telegram_bot_username": "chainpay_test_bot",
        "public_url": "https://pay.shop.example",
        "secret_key": TEST_SECRET_KEY,
        # Test receivers listen on loopback; the SSRF tests turn this off explicitly.
        "webhooks_allow_private": True,
        **overrides,
    }
    return Settings(**values)


test_settings.__test__ = False  # type: ignore[attr-defined]


async def _new_tenant(database_url: str, *, test: bool, name: str, wallet: bool) -> NewOrganization:
    settings = test_settings(database_url)
    created = await create_organization(
        settings, name=name, owner_email=unique_email("owner"), test_key=test, first=False
    )
    if wallet:
        engine = create_engine(database_url, pool=False)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                xpub = account_xpub_from_mnemonic(generate_dev_mnemonic())
                await wallet_service.set_xpub(session, created.organization_id, xpub)
        finally:
            await engine.dispose()
    return created


def make_tenant(
    database_url: str, *, test: bool = False, name: str = "Shop", wallet: bool = True
) -> Tenant:
    created = asyncio.run(_new_tenant(database_url, test=test, name=name, wallet=wallet))
    return Tenant(
        created.organization_id,
        created.owner_user_id,
        created.owner_email,
        created.api_key,
        created.webhook_secret,
    )


class Api:
    """A raw HTTP client bound to one API key."""

    def __init__(self, base_url: str, key: str | None) -> None:
        headers = {"X-API-Key": key} if key else {}
        self.client = httpx.Client(base_url=base_url + "/v1", headers=headers, timeout=30)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, json=json, **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.client.put(path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.delete(path, **kwargs)


def make_member(owner: Api, role: str, **overrides: Any) -> tuple[dict[str, Any], str]:
    """A user of `role` in the owner's organization and a live key for it."""
    body = {
        "name": "Member",
        "lastName": role.title(),
        "email": unique_email(role),
        "password": "correct horse battery",
        "role": role,
        "organizationFeeBps": 0,
        **overrides,
    }
    user = owner.post("/user", json=body)
    assert user.status_code == 200, user.text
    key = owner.post(
        "/api-key", json={"name": f"{role} key", "userId": user.json()["id"], "test": False}
    )
    assert key.status_code == 200, key.text
    return user.json(), key.json()["key"]


def make_product(api: Api, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Monthly access",
        "description": "Private channel",
        "price": "9.99",
        **overrides,
    }
    response = api.post("/product", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def make_customer(api: Api, **overrides: Any) -> dict[str, Any]:
    body = {"name": "Ada", "lastName": "Lovelace", "email": unique_email("customer"), **overrides}
    response = api.post("/customer", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def pay_session(
    database_url: str,
    deposit_address: str,
    amount_base_units: int,
    *,
    chain_id: int = 31337,
    token: str = DEVNET_A_USDT,
    final: bool = True,
    payer: str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    block_timestamp: datetime | None = None,
) -> str:
    """Record a transfer through the real payments service (what the watcher calls). Returns the tx hash."""
    tx_hash = "0x" + secrets.token_hex(32)

    async def run() -> None:
        engine = create_engine(database_url, pool=False)
        try:
            context = CheckoutContext.from_settings(test_settings(database_url))
            async with transaction(create_sessionmaker(engine)) as session:
                await payments_ingest.apply_transfer(
                    session,
                    context,
                    Transfer(
                        chain_id=chain_id,
                        tx_hash=tx_hash,
                        log_index=0,
                        block_number=100,
                        block_hash="0x" + secrets.token_hex(32),
                        block_timestamp=block_timestamp or datetime.now(UTC),
                        from_address=payer,
                        to_address=deposit_address,
                        token_contract=token,
                        amount_base_units=amount_base_units,
                        final=final,
                    ),
                )
        finally:
            await engine.dispose()

    asyncio.run(run())
    return tx_hash


def start_trial(
    database_url: str,
    session_uuid: str,
    *,
    telegram_user_id: int | None = None,
    email: str | None = None,
) -> str:
    """Start a session's trial through the real subscriptions service (as the bot will)."""
    from sqlalchemy import select

    from core.models import CheckoutSession
    from core.subscriptions import service as subscriptions_service

    async def run() -> str:
        engine = create_engine(database_url, pool=False)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                checkout = await session.scalar(
                    select(CheckoutSession).where(CheckoutSession.uuid == session_uuid)
                )
                assert checkout is not None
                subscription = await subscriptions_service.start_trial(
                    session,
                    checkout,
                    now=datetime.now(UTC),
                    telegram_user_id=telegram_user_id,
                    email=email,
                )
                return subscription.uuid
        finally:
            await engine.dispose()

    return asyncio.run(run())
