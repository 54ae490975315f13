"""QBitFlow v1 customers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Response

from api.deps import CurrentPrincipal, SessionDep
from api.responses import model_response
from api.routing import both_slashes, make_router
from core.catalog import service as catalog_service
from core.catalog.schemas import CustomerCreate, CustomerOut, CustomerPage, CustomerUpdate
from core.orgs.schemas import MessageOut
from core.schemas import Email

router = make_router(prefix="/customer", tags=["customers"])
CustomerUUID = Annotated[str, Path(min_length=1, max_length=36, description="Customer UUID")]


@both_slashes(router, "POST", "", response_model=CustomerOut)
async def create_customer(
    body: CustomerCreate, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Create a customer."""
    return model_response(
        CustomerOut.model_validate(await catalog_service.create_customer(session, principal, body))
    )


@both_slashes(router, "GET", "/all", response_model=CustomerPage)
async def list_customers(
    session: SessionDep,
    principal: CurrentPrincipal,
    limit: Annotated[int | None, Query(ge=1, le=100, description="Page size (default 50)")] = None,
    cursor: Annotated[
        str | None, Query(max_length=100, description="nextCursor of the previous page")
    ] = None,
) -> Response:
    """List customers, oldest first, with cursor pagination."""
    items, next_cursor = await catalog_service.page_customers(
        session, principal, limit=limit, cursor=cursor
    )
    return model_response(
        CustomerPage(items=[CustomerOut.model_validate(c) for c in items], next_cursor=next_cursor)
    )


@router.get("/uuid/{customer_uuid}", response_model=CustomerOut)
async def get_customer(
    customer_uuid: CustomerUUID, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Get a customer by UUID."""
    return model_response(
        CustomerOut.model_validate(
            await catalog_service.get_customer(session, principal, customer_uuid)
        )
    )


@router.get("/email/{email}", response_model=CustomerOut)
async def get_customer_by_email(
    email: Annotated[Email, Path(description="Customer email")],
    session: SessionDep,
    principal: CurrentPrincipal,
) -> Response:
    """Get a customer by email."""
    return model_response(
        CustomerOut.model_validate(
            await catalog_service.get_customer_by_email(session, principal, email)
        )
    )


@both_slashes(router, "PUT", "", response_model=CustomerOut)
async def update_customer(
    body: CustomerUpdate, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Update a customer (uuid in the body); absent or null fields stay unchanged."""
    return model_response(
        CustomerOut.model_validate(await catalog_service.update_customer(session, principal, body))
    )


@router.delete("/uuid/{customer_uuid}", response_model=MessageOut)
async def delete_customer(
    customer_uuid: CustomerUUID, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Delete a customer."""
    await catalog_service.delete_customer(session, principal, customer_uuid)
    return model_response(MessageOut(message="Customer deleted"))
