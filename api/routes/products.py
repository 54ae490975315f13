"""QBitFlow v1 products."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Response

from api.deps import CurrentPrincipal, SessionDep, reads_only
from api.responses import model_response
from api.routing import both_slashes, make_router
from core.catalog import service as catalog_service
from core.catalog.schemas import ProductCreate, ProductOut, ProductUpdate
from core.orgs.schemas import MessageOut

router = make_router(prefix="/product", tags=["products"])
ProductId = Annotated[int, Path(gt=0, le=2**63 - 1, description="Product id")]


@both_slashes(router, "POST", "", response_model=ProductOut, status_code=200)
async def create_product(
    body: ProductCreate, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Create a product with an exact USD price."""
    product = await catalog_service.create_product(session, principal, body)
    return model_response(ProductOut.model_validate(product))


@both_slashes(router, "GET", "", response_model=list[ProductOut])
@reads_only
async def list_products(session: SessionDep, principal: CurrentPrincipal) -> Response:
    """List the products the key can see."""
    products = await catalog_service.list_products(session, principal)
    return model_response([ProductOut.model_validate(p) for p in products])


@router.get("/id/{product_id}", response_model=ProductOut)
@reads_only
async def get_product(
    product_id: ProductId, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Get a product by id."""
    return model_response(
        ProductOut.model_validate(await catalog_service.get_product(session, principal, product_id))
    )


@router.get("/reference/{reference}", response_model=ProductOut)
@reads_only
async def get_product_by_reference(
    reference: Annotated[str, Path(min_length=1, max_length=200)],
    session: SessionDep,
    principal: CurrentPrincipal,
) -> Response:
    """Get a product by the merchant's own reference."""
    product = await catalog_service.get_product_by_reference(session, principal, reference)
    return model_response(ProductOut.model_validate(product))


@router.put("/{product_id}", response_model=ProductOut)
async def update_product(
    product_id: ProductId, body: ProductUpdate, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Update a product; absent or null fields stay unchanged."""
    product = await catalog_service.update_product(session, principal, product_id, body)
    return model_response(ProductOut.model_validate(product))


@router.delete("/{product_id}", response_model=MessageOut)
async def delete_product(
    product_id: ProductId, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Delete a product (sessions made from it keep their record of it)."""
    await catalog_service.delete_product(session, principal, product_id)
    return model_response(MessageOut(message="Product deleted"))
