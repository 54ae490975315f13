"""`chainpay demo`: serve, create a test session through the real API, show how to pay it, wait.

The demo acts with an API key of its own: a test key of the organization's owner, made on the
server (as `chainpay key create` would), valid for the session's lifetime plus a margin, held only
in this process (never printed) and revoked when the demo ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx

from chainpay import bootstrap, devnet, roles
from core.clock import Clock, DatabaseClock, SystemClock
from core.config import Settings
from core.db import create_engine, create_sessionmaker, transaction
from core.errors import AppError
from core.orgs import service as orgs_service
from core.orgs.schemas import ApiKeyCreate

Echo = Callable[[str], None]

DEMO_KEY_NAME = "chainpay demo"
DEMO_PRODUCT = {
    "productName": "chainpay demo",
    "description": "A test purchase on the local devnet",
    "price": "19.99",
}
FINAL_STATUSES = frozenset({"completed", "expired", "cancelled", "failed"})
API_START_SECONDS = 60.0
POLL_SECONDS = 0.5
# After completion, how long the demo lets the sender try deliveries that have not been tried.
WEBHOOK_DRAIN_SECONDS = 10.0


@dataclass(frozen=True)
class DemoKey:
    api_key_id: int
    organization_id: int
    api_key: str  # raw: kept in this process, never printed


async def _clock(settings: Settings, engine: Any) -> Clock:
    if settings.clock != "database":
        return SystemClock()
    clock = DatabaseClock(create_sessionmaker(engine))  # the clock every process of a test follows
    await clock.refresh()
    return clock


async def create_demo_key(settings: Settings, organization_id: int | None) -> DemoKey:
    """A test key of the owner, valid for a session's lifetime plus an hour."""
    engine = create_engine(settings.database_url, pool=False)
    try:
        now = (await _clock(settings, engine)).now()
        async with transaction(create_sessionmaker(engine)) as session:
            organization, principal = await bootstrap.owner_principal(
                session, organization_id, test=True
            )
            data = ApiKeyCreate(
                name=DEMO_KEY_NAME,
                user_id=principal.user_id,
                test=True,
                expires_at=now + timedelta(minutes=settings.session_lifetime_minutes + 60),
            )
            key, raw, _role = await orgs_service.create_api_key(session, principal, data, now=now)
            return DemoKey(api_key_id=key.id, organization_id=organization.id, api_key=raw)
    finally:
        await engine.dispose()


async def revoke_demo_key(settings: Settings, key: DemoKey) -> None:
    """Revoke the demo's key (it expires on its own should this fail)."""
    engine = create_engine(settings.database_url, pool=False)
    try:
        now = (await _clock(settings, engine)).now()
        async with transaction(create_sessionmaker(engine)) as session:
            _organization, principal = await bootstrap.owner_principal(
                session, key.organization_id, test=True
            )
            await orgs_service.revoke_api_key(session, principal, key.api_key_id, now=now)
    finally:
        await engine.dispose()


def check_port(host: str, port: int) -> None:
    """Refuse at once, in a line, an address the API could not bind (before the devnet starts)."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise AppError(
            f"cannot listen on {host}:{port} ({reason}): stop what runs there, "
            "or choose another port with --port"
        ) from exc


def run(
    settings: Settings,
    *,
    base_url: str,
    host: str | None,
    port: int | None,
    pay: bool,
    organization_id: int | None,
    echo: Echo,
) -> int:
    """The demo from start to end; the exit code (0: completed, or stopped with Ctrl-C)."""
    key = asyncio.run(create_demo_key(settings, organization_id))
    try:
        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(
                _demo(settings, key, base_url=base_url, host=host, port=port, pay=pay, echo=echo)
            )
        return 0
    finally:
        with contextlib.suppress(AppError):
            asyncio.run(revoke_demo_key(settings, key))


async def _demo(
    settings: Settings,
    key: DemoKey,
    *,
    base_url: str,
    host: str | None,
    port: int | None,
    pay: bool,
    echo: Echo,
) -> int:
    """`chainpay serve` and the demo's driver side by side; whichever ends first ends both."""
    stop = asyncio.Event()
    serving = asyncio.create_task(
        roles.serve(settings, host=host, port=port, stop=stop), name="serve"
    )
    driving = asyncio.create_task(
        _drive(settings, key.api_key, base_url, pay=pay, echo=echo), name="demo"
    )
    done, _pending = await asyncio.wait({serving, driving}, return_when=asyncio.FIRST_COMPLETED)
    if driving not in done:  # a signal stopped serve, or serve failed
        driving.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await driving
        await serving  # re-raises a failure of serve
        echo("Stopped.")
        return 0
    stop.set()
    try:
        return driving.result()  # an AppError of the driver is said once serve has stopped
    finally:
        await serving


async def _drive(settings: Settings, api_key: str, base_url: str, *, pay: bool, echo: Echo) -> int:
    async with httpx.AsyncClient(
        base_url=base_url, headers={"X-API-Key": api_key}, timeout=30
    ) as client:
        await _wait_for_api(client, base_url)
        created = await client.post("/v1/transaction/session-checkout", json=DEMO_PRODUCT)
        if created.status_code != 200:
            raise AppError(f"creating the demo session failed: {_problem(created)}")
        session = created.json()
        uuid = str(session["uuid"])
        first = session["amounts"][0]
        command = devnet.pay_command(uuid, int(first["chainId"]), str(first["symbol"]))
        echo(
            f"Session {uuid} created (test mode): {DEMO_PRODUCT['price']} USD, that is "
            f"{first['amount']} {first['symbol']} on chain {first['chainId']} to "
            f"{session['depositAddress']}."
        )
        echo(f"Checkout page: {session['link']}")
        if pay:
            echo(f"Paying it from the devnet's funded account ({command}) ...")
            tx_hash = await asyncio.to_thread(
                _pay, settings, uuid, int(first["chainId"]), str(first["symbol"])
            )
            echo(f"Sent {tx_hash}")
        else:
            echo(f"Pay it from another terminal: {command}")
            echo("Waiting for the payment (Ctrl-C stops) ...")
        status = await _follow(client, uuid, echo)
        if status != "completed":
            echo(f"The session ended {status} without being paid.")
            return 1
        await _let_webhooks_go(client, echo)
        echo("Done: the session is completed.")
        return 0


def _pay(settings: Settings, uuid: str, chain_id: int, token: str) -> str:
    """`chainpay devnet pay` (blocking: it waits for the node), run in a thread."""
    return asyncio.run(devnet.pay_session(settings, uuid, chain_id, token, None))


async def _wait_for_api(client: httpx.AsyncClient, base_url: str) -> None:
    deadline = time.monotonic() + API_START_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/health", timeout=2)).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise AppError(f"the API did not answer at {base_url} within {API_START_SECONDS:.0f} s")


async def _follow(client: httpx.AsyncClient, uuid: str, echo: Echo) -> str:
    """Print each status the session goes through until it is final; returns the last one."""
    seen = ""
    while True:
        answer = await client.get(f"/v1/transaction/session-checkout/{uuid}")
        if answer.status_code != 200:
            raise AppError(f"reading session {uuid} failed: {_problem(answer)}")
        body = answer.json()
        status = str(body["status"])
        if status != seen:
            seen = status
            paid = Decimal(str(body["paidUsd"]))
            echo(f"Status: {status} (paid {paid} of {body['price']} USD)")
        if status in FINAL_STATUSES:
            return status
        await asyncio.sleep(POLL_SECONDS)


async def _let_webhooks_go(client: httpx.AsyncClient, echo: Echo) -> None:
    """Give the sender a moment for the test endpoints' deliveries not tried yet (a
    `chainpay dev webhook-listen` beside the demo sees `session.completed` arrive)."""
    answer = await client.get("/v1/webhooks/endpoints")
    if answer.status_code != 200:
        return
    endpoints = [e["uuid"] for e in answer.json()["items"] if e["active"]]
    if not endpoints:
        return
    echo(f"Letting the webhook sender deliver to {len(endpoints)} endpoint(s) ...")
    deadline = time.monotonic() + WEBHOOK_DRAIN_SECONDS
    while time.monotonic() < deadline:
        untried = 0
        for endpoint in endpoints:
            deliveries = await client.get(f"/v1/webhooks/endpoints/{endpoint}/deliveries")
            if deliveries.status_code == 200:
                untried += sum(
                    1
                    for d in deliveries.json()["items"]
                    if d["status"] == "pending" and d["attempts"] == 0
                )
        if not untried:
            return
        await asyncio.sleep(POLL_SECONDS)


def _problem(answer: httpx.Response) -> str:
    """An error answer as `status: message` (the API's JSON error body, else its text)."""
    try:
        message = answer.json().get("error") or answer.text
    except (ValueError, AttributeError):
        message = answer.text
    return f"{answer.status_code}: {str(message)[:200]}"
