"""Every model, imported here so Alembic and create_all see the whole schema."""

from core.models.base import Base
from core.models.catalog import Customer, Product
from core.models.idempotency import IdempotencyRecord
from core.models.orgs import ApiKey, Organization, User

__all__ = ["ApiKey", "Base", "Customer", "IdempotencyRecord", "Organization", "Product", "User"]
