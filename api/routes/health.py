"""Health and version for load balancers and monitoring (no auth)."""

from __future__ import annotations

from datetime import datetime

from fastapi import Response
from sqlalchemy import text

from api.deps import SessionDep
from api.errors import error_response
from api.middleware import API_VERSION
from api.responses import ExactJSONResponse
from api.routing import make_router
from core import __version__
from core.chainstate import service as chainstate
from core.events.service import timestamp_text

router = make_router(tags=["health"])


@router.get("/health", responses={503: {"description": "Database unreachable"}})
async def health(session: SessionDep) -> Response:
    """Process up, database reachable, and each periodic job's last run."""
    try:
        await session.execute(text("SELECT 1"))
        runs = await chainstate.job_runs(session)
    except Exception:
        return error_response(503, "Database unreachable", "database_unavailable")
    jobs = {
        run.name: {
            "lastSuccessAt": _timestamp(run.last_success_at),
            "lastCount": run.last_count,
            "lastFailureAt": _timestamp(run.last_failure_at),
        }
        for run in runs
    }
    return ExactJSONResponse({"status": "ok", "database": "ok", "jobs": jobs})


def _timestamp(moment: datetime | None) -> str | None:
    return timestamp_text(moment) if moment is not None else None


@router.get("/version")
async def version() -> Response:
    """Software and API version."""
    return ExactJSONResponse({"version": __version__, "apiVersion": API_VERSION})
