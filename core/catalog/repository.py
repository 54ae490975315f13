"""Queries for products and customers, always scoped to what a principal may see."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Customer, Product
from core.orgs.schemas import Principal
from core.tenancy import visible

Owned = TypeVar("Owned", Product, Customer)


async def first(session: AsyncSession, stmt: Select[Owned]) -> Owned | None:
    return await session.scalar(stmt.limit(1))


async def exists(
    session: AsyncSession, model: type[Owned], principal: Principal, **where: Any
) -> bool:
    """Is the value taken anywhere in the org+mode (not only among what the principal sees)?"""
    stmt = select(model.id).where(
        model.organization_id == principal.organization_id,
        model.test == principal.test,
        model.deleted_at.is_(None),
        *(getattr(model, name) == value for name, value in where.items()),
    )
    return (await session.scalar(stmt.limit(1))) is not None


async def list_products(session: AsyncSession, principal: Principal) -> Sequence[Product]:
    return (await session.scalars(visible(Product, principal).order_by(Product.id))).all()


async def page_customers(
    session: AsyncSession, principal: Principal, *, after_id: int | None, limit: int
) -> Sequence[Customer]:
    stmt = visible(Customer, principal)
    if after_id is not None:
        stmt = stmt.where(Customer.id > after_id)
    return (await session.scalars(stmt.order_by(Customer.id).limit(limit))).all()
