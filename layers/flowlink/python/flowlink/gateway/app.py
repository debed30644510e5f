"""The gateway FastAPI application: /mcp, /api/v1, /dashboard and optional routers of other parts.

``create_app(settings)`` is what uvicorn (locally) and Mangum (in Lambda) serve. Optional
routers are named in ``flowlink.gateway.ROUTERS`` as ``"module:attribute"``; a module that
is not installed yet is skipped (logged), one that fails to import fails the start.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.routing import Route

from flowlink import __version__
from flowlink.errors import FlowLinkError
from flowlink.gateway.dashboard import router as dashboard_router
from flowlink.gateway.mcp_server import McpEndpoint, build_mcp_server
from flowlink.gateway.middleware import (
    BodyLimitMiddleware,
    HostCheckMiddleware,
    JsonRpcShapeMiddleware,
    McpAuthMiddleware,
    error_headers,
)
from flowlink.gateway.rest import router as rest_router
from flowlink.gateway.runtime import GatewayRuntime, build_runtime
from flowlink.settings import Settings

logger = logging.getLogger(__name__)


def _load_router(spec: str) -> Any | None:
    module_name, _, attribute = spec.partition(":")
    if importlib.util.find_spec(module_name) is None:
        logger.info("optional router %s not installed; skipped", spec)
        return None
    return getattr(importlib.import_module(module_name), attribute or "router")


def create_app(
    settings: Settings | None = None,
    *,
    runtime: GatewayRuntime | None = None,
    routers: list[str] | None = None,
) -> FastAPI:
    """Build the gateway app. ``settings`` defaults to the environment (``Settings.from_env``)."""
    from flowlink.gateway import ROUTERS

    runtime = runtime or build_runtime(settings or Settings.from_env())
    mcp_endpoint = McpEndpoint(build_mcp_server(runtime), runtime.settings.max_body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mcp_endpoint.running():
            yield

    app = FastAPI(
        title="FlowLink gateway", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.runtime = runtime
    app.state.mcp_endpoint = mcp_endpoint
    app.router.routes.append(Route("/mcp", endpoint=mcp_endpoint, methods=["GET", "POST", "DELETE"]))
    app.include_router(rest_router)
    app.include_router(dashboard_router)
    for spec in ROUTERS if routers is None else routers:
        router = _load_router(spec)
        if router is not None:
            app.include_router(router)

    @app.exception_handler(FlowLinkError)
    async def flowlink_error(request: Request, exc: FlowLinkError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=error_headers(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
            problems.append(f"{location or 'body'}: {error.get('msg')}")
        return JSONResponse({"error": "invalid_input", "detail": "; ".join(problems)}, status_code=400)

    # Outermost first at run time: body limit, Host check, /mcp authentication, JSON-RPC shape.
    app.add_middleware(JsonRpcShapeMiddleware)
    app.add_middleware(McpAuthMiddleware, get_store=lambda: runtime.store)
    app.add_middleware(HostCheckMiddleware, settings=runtime.settings)
    app.add_middleware(BodyLimitMiddleware, max_bytes=runtime.settings.max_body_bytes)
    return app
