"""Errors of the webhooks domain, and the guard every webhook management call starts with."""

from __future__ import annotations

from core.errors import Forbidden, NotFound
from core.orgs.schemas import Principal


class EndpointNotFound(NotFound):
    def __init__(self, param: str = "uuid") -> None:
        super().__init__("Webhook endpoint not found", param=param)


class EventNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Event not found", param="eventId")


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("Only owner and admin keys manage webhooks", code="admin_required")
