"""Wire shapes of /v1/webhooks: endpoints, deliveries, event types, verification."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AliasChoices, ConfigDict, Field, StrictBool, StrictInt, field_validator

from core.events.types import EVENT_TYPES
from core.schemas import CamelModel
from core.webhooks import outbox
from core.webhooks.queue import PENDING

if TYPE_CHECKING:
    from core.models import WebhookEndpoint
    from core.webhooks.deliveries import DeliveryRecord

EndpointUrl = Annotated[str, Field(min_length=1, max_length=2000)]
ALL_TYPES = "*"
EventTypeList = Annotated[
    list[str],
    Field(
        min_length=1,
        max_length=len(EVENT_TYPES) + 1,
        json_schema_extra={"items": {"type": "string", "enum": [ALL_TYPES, *EVENT_TYPES]}},
    ),
]


def _known_types(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    unknown = [t for t in value if t != ALL_TYPES and t not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}; see GET /v1/webhooks/event-types")
    return sorted(set(value))


class EndpointCreate(CamelModel):
    url: EndpointUrl
    description: Annotated[str, Field(max_length=500)] | None = None
    event_types: EventTypeList | None = Field(
        default=None, description='Event types to receive; absent or ["*"] means every type'
    )
    active: StrictBool = True

    _check_types = field_validator("event_types")(_known_types)


class EndpointUpdate(CamelModel):
    """Partial: absent or null fields stay unchanged; eventTypes ["*"] means every type."""

    url: EndpointUrl | None = None
    description: Annotated[str, Field(max_length=500)] | None = None
    event_types: EventTypeList | None = None
    active: StrictBool | None = None

    _check_types = field_validator("event_types")(_known_types)


class EndpointOut(CamelModel):
    uuid: str
    url: str
    description: str | None
    event_types: list[str] | None = Field(description="null: every event type")
    active: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    secret_rotated_at: datetime | None
    previous_secret_expires_at: datetime | None
    test: bool
    created_at: datetime
    updated_at: datetime


class EndpointCreatedOut(EndpointOut):
    secret: str = Field(description="whsec_… signing secret, shown this once")


class EndpointList(CamelModel):
    items: list[EndpointOut]


class RotateSecretIn(CamelModel):
    overlap_hours: Annotated[StrictInt, Field(ge=0, le=24 * 7)] = Field(
        default=24, description="How long the previous secret keeps signing and verifying"
    )


class SecretOut(CamelModel):
    secret: str = Field(description="The new whsec_… secret, shown this once")
    previous_secret_expires_at: datetime | None


class AttemptOut(CamelModel):
    # Read straight off a core.models.WebhookAttempt; response comes from response_excerpt. An
    # explicit validation_alias switches off the camelCase generator for this field, so the
    # wire name is spelled out as alias.
    model_config = ConfigDict(from_attributes=True)

    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    response: str | None = Field(
        alias="response",
        validation_alias=AliasChoices("response", "response_excerpt"),
        description="First 2 KiB of the receiver's answer",
    )
    error: str | None


class DeliveryOut(CamelModel):
    uuid: str
    event_id: str
    event_type: str
    endpoint_uuid: str | None
    url: str | None = Field(description="A session's own webhookUrl (null for endpoints)")
    status: str = Field(description="pending, delivered or failed")
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    attempt_log: list[AttemptOut]


class DeliveryList(CamelModel):
    items: list[DeliveryOut]


class RedeliverIn(CamelModel):
    endpoint_uuid: Annotated[str, Field(max_length=36)] | None = Field(
        default=None, description="Only to this endpoint (default: every target of the event)"
    )


class EventTypeOut(CamelModel):
    type: str
    description: str


class EventTypesOut(CamelModel):
    items: list[EventTypeOut]


class TestDeliveryOut(CamelModel):
    event_id: str
    delivery: DeliveryOut


class VerifyIn(CamelModel):
    """QBitFlow SDK 1.1.0 `client.webhooks.verify`: the parsed body and the two headers."""

    payload: Any
    received_signature: Annotated[str, Field(max_length=200)]
    received_timestamp: Annotated[str, Field(max_length=30)]


def endpoint_out(endpoint: WebhookEndpoint) -> EndpointOut:
    """An endpoint as the API shows it: event types decoded and sorted (null: every type)."""
    types = outbox.event_types_of(endpoint)
    return EndpointOut(
        uuid=endpoint.uuid,
        url=endpoint.url,
        description=endpoint.description,
        event_types=sorted(types) if types is not None else None,
        active=endpoint.active,
        disabled_reason=endpoint.disabled_reason,
        disabled_at=endpoint.disabled_at,
        secret_rotated_at=endpoint.secret_rotated_at,
        previous_secret_expires_at=endpoint.previous_secret_expires_at,
        test=endpoint.test,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
    )


def delivery_out(record: DeliveryRecord) -> DeliveryOut:
    """A delivery with its event and attempt log; nextAttemptAt only while it is pending."""
    d = record.delivery
    return DeliveryOut(
        uuid=d.uuid,
        event_id=record.event.uuid,
        event_type=record.event.type,
        endpoint_uuid=record.endpoint_uuid,
        url=d.url,
        status=d.status,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at if d.status == PENDING else None,
        delivered_at=d.delivered_at,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        attempt_log=[AttemptOut.model_validate(a) for a in record.attempts],
    )
