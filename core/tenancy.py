"""Which rows a principal may see: one filter for every domain that owns rows per organization.

A row is visible to a key of its organization and mode (live or test); a plain `user` sees only
what it created (a payment: what its session's creator created); deleted catalog rows are gone.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import Select, select

from core.models import CheckoutSession, Customer, Payment, Product, Subscription
from core.orgs.schemas import Principal

Tenanted = TypeVar("Tenanted", Product, Customer, CheckoutSession, Subscription, Payment)


def visible(model: type[Tenanted], principal: Principal) -> Select[Tenanted]:
    """`SELECT model` limited to the rows `principal` may see."""
    stmt = select(model).where(
        model.organization_id == principal.organization_id, model.test == principal.test
    )
    if issubclass(model, (Product, Customer)):
        stmt = stmt.where(model.deleted_at.is_(None))
    if principal.is_admin:
        return stmt
    if issubclass(model, Payment):
        return stmt.join(CheckoutSession, CheckoutSession.id == model.session_id).where(
            CheckoutSession.created_by_user_id == principal.user_id
        )
    return stmt.where(model.created_by_user_id == principal.user_id)
