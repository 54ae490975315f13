"""The official QBitFlow SDK 1.1.0, unchanged, against a live chainpay: every method of
products, users, api_keys and customers, and its error paths."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from qbitflow import QBitFlow, config
from qbitflow.dto.api_key import CreateApiKeyDto
from qbitflow.dto.customer import CreateCustomerDto, UpdateCustomerDto
from qbitflow.dto.product import CreateProductDto, UpdateProductDto
from qbitflow.dto.user import CreateUserDto, UpdateUserDto, UserRole
from qbitflow.exceptions import AuthenticationError, InvalidRequestError, NotFoundException

from tests.harness.factories import Tenant, unique_email


@pytest.fixture
def client(base_url: str, tenant: Tenant) -> Iterator[QBitFlow]:
    previous = config.get_base_url()
    config.set_base_url(base_url + "/v1")
    try:
        yield QBitFlow(api_key=tenant.key, max_retries=1)
    finally:
        config.set_base_url(previous)


def test_products_every_sdk_method_round_trips(client: QBitFlow) -> None:
    created = client.products.create(
        CreateProductDto(name="Pro", description="Pro plan", price=29.99, reference="PRO-1")
    )
    assert created.id > 0
    assert created.price == 29.99
    assert created.is_active is True

    assert client.products.get(created.id).name == "Pro"
    assert client.products.get_by_reference("PRO-1").id == created.id
    assert [p.id for p in client.products.get_all()] == [created.id]

    updated = client.products.update(
        created.id, UpdateProductDto(name="Pro+", description="Better", price=39.5)
    )
    assert (updated.name, updated.description, updated.price) == ("Pro+", "Better", 39.5)
    assert updated.reference == "PRO-1"

    assert client.products.delete(created.id).message
    with pytest.raises(NotFoundException):
        client.products.get(created.id)
    assert client.products.get_all() == []


def test_product_price_from_float_arithmetic_reads_back_as_sent(client: QBitFlow) -> None:
    product = client.products.create(CreateProductDto(name="Sum", description="d", price=0.1 + 0.2))
    assert client.products.get(product.id).price == 0.1 + 0.2


def test_users_every_sdk_method(client: QBitFlow, tenant: Tenant) -> None:
    me = client.users.get()
    assert me.id == tenant.owner_id
    assert me.role is UserRole.OWNER
    assert me.email == tenant.owner_email

    email = unique_email("staff")
    staff = client.users.create(
        CreateUserDto(
            name="Sam",
            last_name="Staff",
            email=email,
            password="long enough password",
            role=UserRole.USER,
            organization_fee_bps=120,
        )
    )
    assert staff.role is UserRole.USER
    assert staff.organization_fee_bps == 120
    assert staff.organization_id == me.organization_id

    assert {u.id for u in client.users.get_all()} == {me.id, staff.id}
    assert client.users.get_by_id(staff.id).email == email

    # The SDK sends password: null and the fee on every update; null stays unchanged.
    renamed = client.users.update(
        staff.id,
        UpdateUserDto(name="Samuel", last_name="Staff", email=email, organization_fee_bps=250),
    )
    assert renamed.name == "Samuel"
    assert renamed.organization_fee_bps == 250

    assert client.users.delete(staff.id).message
    with pytest.raises(NotFoundException):
        client.users.get_by_id(staff.id)


def test_user_updating_itself_keeps_its_fee(client: QBitFlow, base_url: str) -> None:
    email = unique_email("self")
    staff = client.users.create(
        CreateUserDto(
            name="Sue",
            last_name="Self",
            email=email,
            password="long enough password",
            role=UserRole.USER,
            organization_fee_bps=100,
        )
    )
    key = client.api_keys.create(CreateApiKeyDto(name="sue", user_id=staff.id, test=False))
    as_staff = QBitFlow(api_key=key.key, max_retries=1)
    updated = as_staff.users.update(
        staff.id,
        UpdateUserDto(name="Susan", last_name="Self", email=email, organization_fee_bps=999),
    )
    assert updated.name == "Susan"
    assert updated.organization_fee_bps == 100


def test_api_keys_every_sdk_method(client: QBitFlow, tenant: Tenant) -> None:
    created = client.api_keys.create(
        CreateApiKeyDto(name="ci", user_id=tenant.owner_id, test=False)
    )
    assert created.key.startswith("cp_live_")
    assert created.data.name == "ci"
    assert created.data.role is UserRole.OWNER
    assert created.data.test is False

    test_key = client.api_keys.create(
        CreateApiKeyDto(name="sandbox", user_id=tenant.owner_id, test=True)
    )
    assert test_key.key.startswith("cp_test_")
    assert test_key.data.test is True

    mine = client.api_keys.get_all()
    assert {k.name for k in mine} >= {"Owner key", "ci", "sandbox"}
    assert {k.id for k in client.api_keys.get_for_user(tenant.owner_id)} == {k.id for k in mine}

    assert client.api_keys.delete(created.data.id).message
    assert created.data.id not in {k.id for k in client.api_keys.get_all()}
    with pytest.raises(AuthenticationError):
        QBitFlow(api_key=created.key, max_retries=1).users.get()


def test_customers_every_sdk_method(client: QBitFlow) -> None:
    email = unique_email("cust")
    customer = client.customers.create(
        CreateCustomerDto(
            name="Ada",
            last_name="Lovelace",
            email=email,
            phone_number="+44 20 7946 0000",
            address="12 St James's Square",
            reference="CRM-1",
        )
    )
    assert customer.email == email
    assert client.customers.get(customer.uuid).reference == "CRM-1"
    assert client.customers.get_by_email(email).uuid == customer.uuid

    page = client.customers.get_all(limit=10)
    assert [c.uuid for c in page.items] == [customer.uuid]
    assert page.next_cursor is None

    updated = client.customers.update(
        customer.uuid,
        UpdateCustomerDto(name="Augusta", last_name=None, email=None, phone_number="+1 555 0100"),
    )
    assert (updated.name, updated.last_name, updated.phone_number) == (
        "Augusta",
        "Lovelace",
        "+1 555 0100",
    )
    assert updated.reference == "CRM-1"

    assert client.customers.delete(customer.uuid).message
    with pytest.raises(NotFoundException):
        client.customers.get(customer.uuid)


def test_customer_pagination_through_the_sdk(client: QBitFlow) -> None:
    made = [
        client.customers.create(
            CreateCustomerDto(name="C", last_name=str(i), email=unique_email("p"))
        ).uuid
        for i in range(7)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        page = client.customers.get_all(limit=3, cursor=cursor)
        seen += [c.uuid for c in page.items]
        if not page.has_more():
            break
        cursor = page.next_cursor
    assert seen == made


def test_sdk_error_paths(client: QBitFlow, base_url: str) -> None:
    with pytest.raises(AuthenticationError):
        QBitFlow(api_key="cp_live_not-a-real-key", max_retries=1).products.get_all()
    with pytest.raises(NotFoundException):
        client.products.get(987654321)
    with pytest.raises(NotFoundException):
        client.products.get_by_reference("missing")
    with pytest.raises(NotFoundException):
        client.customers.get("00000000-0000-4000-8000-000000000000")
    with pytest.raises(NotFoundException):
        client.customers.get_by_email("nobody@shop.example")
    with pytest.raises(NotFoundException):
        client.users.get_by_id(987654321)
    with pytest.raises(NotFoundException):
        client.api_keys.delete(987654321)
    duplicate = CreateCustomerDto(name="A", last_name="B", email="dup@shop.example")
    client.customers.create(duplicate)
    with pytest.raises(InvalidRequestError) as conflict:
        client.customers.create(duplicate)
    assert conflict.value.status_code == 409
    assert "already exists" in conflict.value.message


def test_sdk_reads_timestamps_as_utc(client: QBitFlow) -> None:
    product = client.products.create(CreateProductDto(name="T", description="d", price=1))
    assert product.created_at.tzinfo is not None
    assert abs((datetime.now(UTC) - product.created_at).total_seconds()) < 60
