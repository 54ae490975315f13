"""Products and customers of a merchant."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from core import tenancy
from core.catalog import repository
from core.catalog.exceptions import (
    CustomerEmailTaken,
    CustomerNotFound,
    ProductNotFound,
    ReferenceImmutable,
    ReferenceTaken,
)
from core.catalog.schemas import (
    DAY_SECONDS,
    CustomerCreate,
    CustomerUpdate,
    ProductCreate,
    ProductUpdate,
)
from core.models import Customer, Product
from core.models.base import utcnow
from core.orgs.schemas import Principal
from core.pagination import decode_cursor, encode_cursor

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100

# --- products ------------------------------------------------------------------------------


async def create_product(
    session: AsyncSession, principal: Principal, data: ProductCreate
) -> Product:
    if data.reference is not None and await repository.exists(
        session, Product, principal, reference=data.reference
    ):
        raise ReferenceTaken()
    product = Product(
        organization_id=principal.organization_id,
        created_by_user_id=principal.user_id,
        test=principal.test,
        name=data.name,
        description=data.description,
        price_usd=data.price,
        reference=data.reference,
        telegram_chat_id=data.telegram_chat_id,
        grace_seconds=_grace_seconds(data.grace_period_days),
        reactivate_on_late_payment=data.reactivate_on_late_payment,
        max_spending_per_period_usd=data.max_spending_per_period,
    )
    session.add(product)
    await session.flush()
    return product


def _grace_seconds(days: int | None) -> int | None:
    """Products keep the grace in seconds, the lifecycle's unit (None: the default)."""
    return None if days is None else days * DAY_SECONDS


async def list_products(session: AsyncSession, principal: Principal) -> Sequence[Product]:
    return await repository.list_products(session, principal)


async def get_product(session: AsyncSession, principal: Principal, product_id: int) -> Product:
    product = await repository.first(
        session, tenancy.visible(Product, principal).where(Product.id == product_id)
    )
    if product is None:
        raise ProductNotFound()
    return product


async def get_product_by_reference(
    session: AsyncSession, principal: Principal, reference: str
) -> Product:
    product = await repository.first(
        session, tenancy.visible(Product, principal).where(Product.reference == reference)
    )
    if product is None:
        raise ProductNotFound(param="reference")
    return product


async def update_product(
    session: AsyncSession, principal: Principal, product_id: int, data: ProductUpdate
) -> Product:
    product = await get_product(session, principal, product_id)
    if data.name is not None:
        product.name = data.name
    if data.description is not None:
        product.description = data.description
    if data.price is not None:
        product.price_usd = data.price
    if data.is_active is not None:
        product.is_active = data.is_active
    if "telegram_chat_id" in data.model_fields_set:  # sent as null: unbind the chat
        product.telegram_chat_id = data.telegram_chat_id
    if "grace_period_days" in data.model_fields_set:  # sent as null: the default grace again
        product.grace_seconds = _grace_seconds(data.grace_period_days)
    if data.reactivate_on_late_payment is not None:
        product.reactivate_on_late_payment = data.reactivate_on_late_payment
    if "max_spending_per_period" in data.model_fields_set:  # sent as null: the default cap
        product.max_spending_per_period_usd = data.max_spending_per_period
    product.updated_at = utcnow()
    await session.flush()
    return product


async def delete_product(session: AsyncSession, principal: Principal, product_id: int) -> None:
    """Soft delete: sessions and subscriptions made from the product keep pointing at it."""
    product = await get_product(session, principal, product_id)
    product.deleted_at = utcnow()
    product.is_active = False
    await session.flush()


# --- customers -----------------------------------------------------------------------------


async def create_customer(
    session: AsyncSession, principal: Principal, data: CustomerCreate
) -> Customer:
    if await repository.exists(session, Customer, principal, email=data.email):
        raise CustomerEmailTaken()
    if data.reference is not None and await repository.exists(
        session, Customer, principal, reference=data.reference
    ):
        raise ReferenceTaken()
    customer = Customer(
        organization_id=principal.organization_id,
        created_by_user_id=principal.user_id,
        test=principal.test,
        name=data.name,
        last_name=data.last_name,
        email=data.email,
        phone_number=data.phone_number,
        address=data.address,
        reference=data.reference,
        telegram_user_id=data.telegram_user_id,
        wallet_address=data.wallet_address,
    )
    session.add(customer)
    await session.flush()
    return customer


async def get_customer(session: AsyncSession, principal: Principal, customer_uuid: str) -> Customer:
    customer = await repository.first(
        session, tenancy.visible(Customer, principal).where(Customer.uuid == customer_uuid)
    )
    if customer is None:
        raise CustomerNotFound()
    return customer


async def get_customer_by_email(
    session: AsyncSession, principal: Principal, email: str
) -> Customer:
    customer = await repository.first(
        session, tenancy.visible(Customer, principal).where(Customer.email == email)
    )
    if customer is None:
        raise CustomerNotFound(param="email")
    return customer


async def page_customers(
    session: AsyncSession, principal: Principal, *, limit: int | None, cursor: str | None
) -> tuple[Sequence[Customer], str | None]:
    """Oldest first; the cursor is opaque and walks every customer exactly once."""
    size = DEFAULT_PAGE_SIZE if limit is None else limit
    after_id = decode_cursor("c", cursor) if cursor else None
    rows = await repository.page_customers(session, principal, after_id=after_id, limit=size + 1)
    items = rows[:size]
    next_cursor = encode_cursor("c", items[-1].id) if len(rows) > size else None
    return items, next_cursor


async def update_customer(
    session: AsyncSession, principal: Principal, data: CustomerUpdate
) -> Customer:
    customer = await get_customer(session, principal, data.uuid)
    if data.reference is not None and data.reference != customer.reference:
        raise ReferenceImmutable()
    if data.email is not None and data.email != customer.email:
        if await repository.exists(session, Customer, principal, email=data.email):
            raise CustomerEmailTaken()
        customer.email = data.email
    for field in (
        "name",
        "last_name",
        "phone_number",
        "address",
        "telegram_user_id",
        "wallet_address",
    ):
        value = getattr(data, field)
        if value is not None:
            setattr(customer, field, value)
    customer.updated_at = utcnow()
    await session.flush()
    return customer


async def delete_customer(session: AsyncSession, principal: Principal, customer_uuid: str) -> None:
    customer = await get_customer(session, principal, customer_uuid)
    customer.deleted_at = utcnow()
    await session.flush()
