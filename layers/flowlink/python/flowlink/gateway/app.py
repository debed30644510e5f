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
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from flowlink import __version__
from flowlink.errors import FlowLinkError
from flowlink.gateway.dashboard import router as dashboard_router
from flowlink.gateway.mcp_server import McpEndpoint, build_mcp_server
from flowlink.gateway.middleware import (
    BodyLimitMiddleware,
    HostCheckMiddleware,
    JsonContentTypeMiddleware,
    JsonRpcShapeMiddleware,
    McpAuthMiddleware,
    error_headers,
)
from flowlink.gateway.rest import router as rest_router
from flowlink.gateway.runtime import GatewayRuntime, build_runtime
from flowlink.settings import Settings

logger = logging.getLogger(__name__)


# (error code, detail template) of the HTTP errors Starlette raises itself.
_HTTP_ERRORS = {
    404: ("not_found", "no route {method} {path}"),
    405: ("method_not_allowed", "{path} does not accept {method} (allowed: {allow})"),
}


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

    # The OpenAPI document (/openapi.json) maps every route and body of the API: served only
    # for local development (FLOWLINK_ENV=local), never unauthenticated on a deployed stack.
    # The interactive /docs and /redoc pages are off everywhere (they load scripts from a CDN).
    app = FastAPI(
        title="FlowLink gateway",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if runtime.settings.is_local else None,
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

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown routes (404) and wrong methods (405) get the body every other error has.
        code, template = _HTTP_ERRORS.get(exc.status_code, ("http_error", None))
        detail = str(exc.detail)
        if template and detail == HTTPStatus(exc.status_code).phrase:
            allow = (exc.headers or {}).get("Allow")
            detail = template.format(method=request.method, path=request.url.path[:200], allow=allow)
        return JSONResponse({"error": code, "detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
            problems.append(f"{location or 'body'}: {error.get('msg')}")
        return JSONResponse({"error": "invalid_input", "detail": "; ".join(problems)}, status_code=400)

    # Outermost first at run time: body limit, Host check, /mcp authentication, JSON-RPC shape,
    # JSON Content-Type of REST bodies.
    app.add_middleware(JsonContentTypeMiddleware)
    app.add_middleware(JsonRpcShapeMiddleware)
    app.add_middleware(McpAuthMiddleware, get_store=lambda: runtime.store)
    app.add_middleware(HostCheckMiddleware, settings=runtime.settings)
    app.add_middleware(BodyLimitMiddleware, max_bytes=runtime.settings.max_body_bytes)
    return app
