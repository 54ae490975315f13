"""Plain factory functions: tenants through the real bootstrap service, the rest over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from chainpay.bootstrap import create_organization
from core.config import Settings


@dataclass(frozen=True)
class Tenant:
    organization_id: int
    owner_id: int
    owner_email: str
    key: str


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@shop.example"


def make_tenant(database_url: str, *, test: bool = False, name: str = "Shop") -> Tenant:
    created = asyncio.run(
        create_organization(
            Settings(database_url=database_url),
            name=name,
            owner_email=unique_email("owner"),
            test_key=test,
            first=False,
        )
    )
    return Tenant(
        created.organization_id, created.owner_user_id, created.owner_email, created.api_key
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
