"""Webhooks: endpoints, their secrets and deliveries, event types, and QBitFlow's verify call."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Path, Query, Request, Response

from api.deps import CurrentPrincipal, NowDep, SessionDep
from api.responses import model_response
from api.routing import both_slashes, make_router
from core.errors import InvalidInput
from core.events.types import EVENT_TYPES
from core.orgs.schemas import MessageOut
from core.webhooks import deliveries as deliveries_service
from core.webhooks import endpoints as endpoints_service
from core.webhooks import secrets as secrets_service
from core.webhooks.crypto import SecretBox
from core.webhooks.schemas import (
    DeliveryList,
    EndpointCreate,
    EndpointCreatedOut,
    EndpointList,
    EndpointOut,
    EndpointUpdate,
    EventTypeOut,
    EventTypesOut,
    RedeliverIn,
    RotateSecretIn,
    SecretOut,
    TestDeliveryOut,
    VerifyIn,
    delivery_out,
    endpoint_out,
)
from core.webhooks.ssrf import Resolve

router = make_router(prefix="/webhooks", tags=["webhooks"])
EndpointUUID = Annotated[str, Path(min_length=1, max_length=36, description="Endpoint UUID")]


class InvalidSignature(InvalidInput):
    status_code = 400  # what QBitFlow answers, and what its SDK reads as "not valid"
    code = "invalid_signature"


def _box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


def _resolve(request: Request) -> Resolve:
    resolve: Resolve = request.app.state.resolve
    return resolve


def _allow_private(request: Request) -> bool:
    return bool(request.app.state.settings.webhooks_allow_private)


@both_slashes(router, "POST", "/verify", response_model=MessageOut)
async def verify_webhook(
    body: VerifyIn,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    now: NowDep,
) -> Response:
    """Check a QBitFlow-style signature (X-Webhook-Signature-256) against the organization's secrets."""
    valid = await secrets_service.verify(
        session,
        principal,
        _box(request),
        payload=body.payload,
        signature=body.received_signature,
        timestamp=body.received_timestamp,
        now=now,
    )
    if not valid:
        raise InvalidSignature(
            "Invalid webhook signature (or timestamp outside the 300 s window)",
            param="receivedSignature",
        )
    return model_response(MessageOut(message="Webhook signature is valid"))


@both_slashes(router, "GET", "/event-types", response_model=EventTypesOut)
async def list_event_types() -> Response:
    """Every event type a webhook can carry, with what it means."""
    return model_response(
        EventTypesOut(items=[EventTypeOut(type=t, description=d) for t, d in EVENT_TYPES.items()])
    )


@both_slashes(router, "POST", "/default-secret/rotate", response_model=SecretOut)
async def rotate_default_secret(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    now: NowDep,
    body: RotateSecretIn | None = None,
) -> Response:
    """New default secret (signs deliveries to sessions' own webhookUrl); shown this once."""
    secret, previous_expires = await secrets_service.rotate_default_secret(
        session,
        principal,
        _box(request),
        overlap=timedelta(hours=(body or RotateSecretIn()).overlap_hours),
        now=now,
    )
    return model_response(SecretOut(secret=secret, previous_secret_expires_at=previous_expires))


@both_slashes(router, "POST", "/endpoints", response_model=EndpointCreatedOut, status_code=201)
async def create_endpoint(
    body: EndpointCreate, request: Request, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Register an endpoint; the response carries its signing secret, shown this once."""
    endpoint, secret = await endpoints_service.create_endpoint(
        session,
        principal,
        body,
        _box(request),
        allow_private=_allow_private(request),
        resolve=_resolve(request),
    )
    out = EndpointCreatedOut(**endpoint_out(endpoint).model_dump(), secret=secret)
    return model_response(out, status_code=201)


@both_slashes(router, "GET", "/endpoints", response_model=EndpointList)
async def list_endpoints(session: SessionDep, principal: CurrentPrincipal) -> Response:
    """The organization's endpoints of the key's mode (live or test)."""
    endpoints = await endpoints_service.list_endpoints(session, principal)
    return model_response(EndpointList(items=[endpoint_out(e) for e in endpoints]))


@router.get("/endpoints/{endpoint_uuid}", response_model=EndpointOut)
async def get_endpoint(
    endpoint_uuid: EndpointUUID, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """One endpoint."""
    return model_response(
        endpoint_out(await endpoints_service.get_endpoint(session, principal, endpoint_uuid))
    )


@router.patch("/endpoints/{endpoint_uuid}", response_model=EndpointOut)
async def update_endpoint(
    endpoint_uuid: EndpointUUID,
    body: EndpointUpdate,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> Response:
    """Change url, description, event types or active; re-activating clears the disabled state."""
    endpoint = await endpoints_service.update_endpoint(
        session,
        principal,
        endpoint_uuid,
        body,
        allow_private=_allow_private(request),
        resolve=_resolve(request),
    )
    return model_response(endpoint_out(endpoint))


@router.delete("/endpoints/{endpoint_uuid}", response_model=MessageOut)
async def delete_endpoint(
    endpoint_uuid: EndpointUUID, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Delete an endpoint and its delivery log."""
    await endpoints_service.delete_endpoint(session, principal, endpoint_uuid)
    return model_response(MessageOut(message="Webhook endpoint deleted"))


@router.post("/endpoints/{endpoint_uuid}/rotate-secret", response_model=SecretOut)
async def rotate_endpoint_secret(
    endpoint_uuid: EndpointUUID,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    now: NowDep,
    body: RotateSecretIn | None = None,
) -> Response:
    """New secret, shown this once; the old one keeps signing (second signature) for the overlap."""
    endpoint, secret = await endpoints_service.rotate_endpoint_secret(
        session,
        principal,
        endpoint_uuid,
        _box(request),
        overlap=timedelta(hours=(body or RotateSecretIn()).overlap_hours),
        now=now,
    )
    return model_response(
        SecretOut(secret=secret, previous_secret_expires_at=endpoint.previous_secret_expires_at)
    )


@router.post("/endpoints/{endpoint_uuid}/test", response_model=TestDeliveryOut, status_code=202)
async def send_test_event(
    endpoint_uuid: EndpointUUID, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Queue a `webhook.test` delivery to this endpoint (sent within a second by the sender)."""
    event, delivery = await deliveries_service.send_test(session, principal, endpoint_uuid)
    record = await deliveries_service.delivery_record(session, delivery)
    return model_response(
        TestDeliveryOut(event_id=event.uuid, delivery=delivery_out(record)), status_code=202
    )


@router.get("/endpoints/{endpoint_uuid}/deliveries", response_model=DeliveryList)
async def list_deliveries(
    endpoint_uuid: EndpointUUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=100, description="How many, newest first")] = 50,
) -> Response:
    """Recent deliveries to this endpoint with every attempt (status, duration, response, error)."""
    records = await deliveries_service.recent_deliveries(
        session, principal, endpoint_uuid, limit=limit
    )
    return model_response(DeliveryList(items=[delivery_out(r) for r in records]))


@router.post("/events/{event_id}/redeliver", response_model=DeliveryList, status_code=202)
async def redeliver_event(
    event_id: Annotated[str, Path(min_length=1, max_length=36, description="Event id (evt_…)")],
    session: SessionDep,
    principal: CurrentPrincipal,
    now: NowDep,
    body: RedeliverIn | None = None,
) -> Response:
    """Send an event again now, to all its targets or to one endpoint."""
    records = await deliveries_service.redeliver(
        session, principal, event_id, (body or RedeliverIn()).endpoint_uuid, now=now
    )
    return model_response(DeliveryList(items=[delivery_out(r) for r in records]), status_code=202)
