"""Route class and helpers shared by every router."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from api.responses import ExactJSONRequest
from core.errors import AppError

BODY_METHODS = {"POST", "PUT", "PATCH"}


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"


class ExactJSONRoute(APIRoute):
    """Parses JSON bodies with exact decimals and refuses non-JSON bodies with 415."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact_handler(request: Request) -> Response:
            request = ExactJSONRequest(request.scope, request.receive)
            if request.method in BODY_METHODS:
                content_type = request.headers.get("content-type", "")
                media_type = content_type.split(";", 1)[0].strip().lower()
                body = await request.body()
                if body and not (media_type == "application/json" or media_type.endswith("+json")):
                    raise UnsupportedMediaType(
                        "Request bodies must be JSON (Content-Type: application/json)",
                        param="Content-Type",
                    )
            return await handler(request)

        return exact_handler


def make_router(**kwargs: Any) -> APIRouter:
    return APIRouter(route_class=ExactJSONRoute, **kwargs)


def both_slashes(
    router: APIRouter, method: str, path: str, **kwargs: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Serve `path` and `path/` (the SDK adds the slash; httpx follows no redirect)."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        router.api_route(path, methods=[method], **kwargs)(func)
        router.api_route(path + "/", methods=[method], include_in_schema=False, **kwargs)(func)
        return func

    return decorator
