"""`chainpay dev webhook-listen`: a local receiver registered as a test webhook endpoint, printing
each delivery with its verification by both schemes a delivery is signed with.

Standard Webhooks is checked by the `standardwebhooks` library (a receiver's view, independent
of chainpay's signing code); QBitFlow v1 by `core.webhooks.signing.verify_qbitflow`, the check
behind `POST /v1/webhooks/verify` (qbitflow 2.1.0's own verifier cannot be installed beside the
1.1.0 SDK; the test suite holds the two to the same answers). Like QBitFlow's SDKs, it re-reads
the body as JSON (numbers as floats) and checks the signature of its canonical form.

The endpoint's signing secret stays in this process: it is never printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from chainpay import bootstrap
from core.config import Settings
from core.db import create_engine, create_sessionmaker, transaction
from core.errors import AppError
from core.webhooks import endpoints as endpoints_service
from core.webhooks.crypto import SecretBox
from core.webhooks.exceptions import EndpointNotFound
from core.webhooks.schemas import EndpointCreate
from core.webhooks.signing import verify_qbitflow

Echo = Callable[[str], None]

HOST = "127.0.0.1"
PATH = "/webhook"
DESCRIPTION = "chainpay dev webhook-listen"


@dataclass(frozen=True)
class Verdict:
    """What one delivery is, and whether each scheme's signature holds."""

    event_type: str
    event_id: str
    standard_error: str | None  # None: Standard Webhooks signature verified
    qbitflow_error: str | None  # None: QBitFlow v1 signature verified

    def line(self) -> str:
        return (
            f"{self.event_type}  {self.event_id}  "
            f"standardwebhooks: {_result(self.standard_error)}  "
            f"qbitflow-v1: {_result(self.qbitflow_error)}"
        )


def _result(error: str | None) -> str:
    return "ok" if error is None else f"FAILED ({error})"


def check_delivery(secret: str, body: bytes, headers: Mapping[str, str], *, now: int) -> Verdict:
    """Verify one delivery's body and headers with the endpoint's secret, by both schemes."""
    lowered = {k.lower(): v for k, v in headers.items()}
    event_type = "(no type)"
    payload: object = None
    parsed = False
    try:
        payload = json.loads(body)
        parsed = True
        if isinstance(payload, dict) and isinstance(payload.get("type"), str):
            event_type = payload["type"]
    except ValueError:
        pass
    try:
        Webhook(secret).verify(body, lowered)
        standard_error = None
    except WebhookVerificationError as exc:
        standard_error = str(exc) or type(exc).__name__
    except ValueError as exc:  # a malformed header (not `v1,<base64>`)
        standard_error = f"malformed webhook-signature: {exc}"
    if not parsed:
        qbitflow_error: str | None = "the body is not JSON"
    elif "x-webhook-signature-256" not in lowered or "x-webhook-timestamp" not in lowered:
        qbitflow_error = "X-Webhook-Signature-256 or X-Webhook-Timestamp missing"
    elif verify_qbitflow(
        [secret],
        payload=payload,
        signature=lowered["x-webhook-signature-256"],
        timestamp=lowered["x-webhook-timestamp"],
        now=now,
    ):
        qbitflow_error = None
    else:
        qbitflow_error = "signature does not match, or timestamp outside 300 s"
    return Verdict(
        event_type=event_type,
        event_id=lowered.get("webhook-id", "(no webhook-id)"),
        standard_error=standard_error,
        qbitflow_error=qbitflow_error,
    )


@dataclass(frozen=True)
class Registered:
    endpoint_uuid: str
    organization_id: int
    organization_name: str
    secret: str  # kept in this process, never printed


async def register(settings: Settings, url: str, organization_id: int | None) -> Registered:
    """`url` as a test endpoint (every event type) of the organization, made by its owner."""
    engine = create_engine(settings.database_url, pool=False)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            organization, principal = await bootstrap.owner_principal(
                session, organization_id, test=True
            )
            endpoint, secret = await endpoints_service.create_endpoint(
                session,
                principal,
                EndpointCreate(url=url, description=DESCRIPTION),
                SecretBox.from_settings(settings),
                allow_private=True,  # the caller checked that the sender may reach loopback
            )
            return Registered(endpoint.uuid, organization.id, organization.name, secret)
    finally:
        await engine.dispose()


async def unregister(settings: Settings, registered: Registered) -> None:
    """Delete the endpoint (and its delivery log); one already deleted is fine."""
    engine = create_engine(settings.database_url, pool=False)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            _organization, principal = await bootstrap.owner_principal(
                session, registered.organization_id, test=True
            )
            with contextlib.suppress(EndpointNotFound):
                await endpoints_service.delete_endpoint(
                    session, principal, registered.endpoint_uuid
                )
    finally:
        await engine.dispose()


async def listen(settings: Settings, *, port: int, organization_id: int | None, echo: Echo) -> None:
    """Receive and print deliveries until SIGINT/SIGTERM, then delete the endpoint."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    secret: list[str] = []  # set once registered; nothing is delivered before that

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if not secret:
            return web.Response(status=503)
        verdict = check_delivery(secret[0], body, request.headers, now=int(time.time()))
        echo(verdict.line())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post(PATH, receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, port)
        try:
            await site.start()
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise AppError(
                f"cannot listen on {HOST}:{port} ({reason}): "
                "choose another port with --port, or leave it out for a free one"
            ) from exc
        bound_port = int(runner.addresses[0][1])
        url = f"http://{HOST}:{bound_port}{PATH}"
        registered = await register(settings, url, organization_id)
        secret.append(registered.secret)
        try:
            echo(
                f"Listening on {url}: test endpoint {registered.endpoint_uuid} of organization "
                f"#{registered.organization_id} '{registered.organization_name}', every event "
                "type (its signing secret stays in this process)."
            )
            echo(
                "Deliveries come from `chainpay serve` or `chainpay demo` on this database; "
                "Ctrl-C removes the endpoint."
            )
            await stop.wait()
        finally:
            await unregister(settings, registered)
            echo(f"Endpoint {registered.endpoint_uuid} removed.")
    finally:
        await runner.cleanup()
