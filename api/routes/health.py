"""Health and version for load balancers and monitoring (no auth)."""

from __future__ import annotations

from fastapi import Response
from sqlalchemy import text

from api.deps import SessionDep
from api.errors import error_response
from api.middleware import API_VERSION
from api.responses import ExactJSONResponse
from api.routing import make_router
from core import __version__

router = make_router(tags=["health"])


@router.get("/health", responses={503: {"description": "Database unreachable"}})
async def health(session: SessionDep) -> Response:
    """Process up and database reachable."""
    try:
        await session.execute(text("SELECT 1"))
    except Exception:
        return error_response(503, "Database unreachable", "database_unavailable")
    return ExactJSONResponse({"status": "ok", "database": "ok"})


@router.get("/version")
async def version() -> Response:
    """Software and API version."""
    return ExactJSONResponse({"version": __version__, "apiVersion": API_VERSION})
