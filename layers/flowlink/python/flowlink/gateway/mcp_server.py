"""The hosted MCP endpoint: an ``MCPServer`` with the gateway tools, served statelessly at /mcp.

Uses the official SDK's streamable HTTP session manager (``stateless_http=True``,
``json_response=True``), which serves both protocol generations: 2026-07-28 requests
(``MCP-Protocol-Version`` header, ``server/discover``, no handshake) and 2025-11-25 /
2025-06-18 clients (``initialize``). A session manager can run only once, while Mangum
runs the ASGI lifespan around every Lambda invocation, so ``McpEndpoint.running()``
builds a fresh manager for each lifespan cycle (cheap: stateless mode keeps no sessions).
The SDK's own Host check is off because ``HostCheckMiddleware`` does it for API Gateway
hosts too; its Content-Type check stays on.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

from flowlink import __version__
from flowlink.gateway.runtime import GatewayRuntime
from flowlink.mcp_tools import TOOL_MODULES

SERVER_NAME = "flowlink"
INSTRUCTIONS = (
    "FlowLink runs shell commands on enrolled servers through their edge relay. Every command is "
    "judged by Shield: denied commands are refused with reasons, risky ones need human approval. "
    "Use `agents` to see the servers, `exec` to run a command, `history` to see past results."
)


def build_mcp_server(runtime: GatewayRuntime) -> MCPServer:
    server = MCPServer(SERVER_NAME, version=__version__, instructions=INSTRUCTIONS)
    for module_name in TOOL_MODULES:
        importlib.import_module(module_name).register(server, runtime)
    return server


class McpEndpoint:
    """ASGI app for /mcp that delegates to the session manager of the current lifespan cycle."""

    def __init__(self, server: MCPServer, max_body_bytes: int):
        self.server = server
        self.max_body_bytes = max_body_bytes
        self._manager = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            max_request_body_size=self.max_body_bytes,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        manager = self.server.session_manager
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = self._manager
        if manager is None:
            raise RuntimeError("MCP endpoint used outside the app lifespan")
        await manager.handle_request(scope, receive, send)
