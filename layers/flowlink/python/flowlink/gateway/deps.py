"""FastAPI dependencies for REST routers: the runtime and ``require_key(*scopes)``.

Routers written by other parts of FlowLink (e.g. ``flowlink.audit.api``) use these so
every REST route authenticates the same way:

    @router.get("/audit")
    def list_audit(auth: AuthContext = Depends(require_key("admin", "approver"))): ...

``require_key()`` with no scopes accepts any valid key. A missing, bad or revoked key gives
401 (JSON body + ``WWW-Authenticate``), a valid key of the wrong scope 403, both through
the app's FlowLinkError handler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import anyio
from fastapi import Depends, Request

from flowlink.auth import SCOPE_ADMIN, AuthContext, authenticate, extract_presented_key, require_scope
from flowlink.gateway.runtime import GatewayRuntime

__all__ = ["AdminKey", "AnyKey", "AuthContext", "get_runtime", "require_key"]


def get_runtime(request: Request) -> GatewayRuntime:
    return request.app.state.runtime


def require_key(*scopes: str) -> Callable[[Request], object]:
    """Dependency factory: authenticate the request's API key and check its scope."""

    async def dependency(request: Request) -> AuthContext:
        runtime = get_runtime(request)
        presented = extract_presented_key(request.headers)
        auth = await anyio.to_thread.run_sync(authenticate, runtime.store, presented)
        require_scope(auth, *scopes)
        return auth

    return dependency


# The two parameter annotations every router uses: any valid key of the org, or an admin key.
AnyKey = Annotated[AuthContext, Depends(require_key())]
AdminKey = Annotated[AuthContext, Depends(require_key(SCOPE_ADMIN))]
