"""The hosted MCP endpoint: an ``MCPServer`` with the gateway tools, served statelessly at /mcp.

Uses the official SDK's streamable HTTP session manager (``stateless_http=True``,
``json_response=True``), which serves both protocol generations: 2026-07-28 requests
(``MCP-Protocol-Version`` header, ``server/discover``, no handshake) and 2025-11-25 /
2025-06-18 clients (``initialize``). A session manager can run only once, while Mangum
runs the ASGI lifespan around every Lambda invocation, so ``McpEndpoint.running()``
builds a fresh manager for each lifespan cycle (cheap: stateless mode keeps no sessions).
The SDK's own Host check is off because ``HostCheckMiddleware`` does it for API Gateway
hosts too; its Content-Type check stays on. MCP tasks for ``exec`` (2025-11-25 core tasks and
the 2026-07-28 tasks extension) are ``flowlink.mcp_tools.exec_tasks``.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import ConfigDict, ValidationError
from starlette.types import Receive, Scope, Send

from flowlink import __version__
from flowlink.gateway.runtime import GatewayRuntime
from flowlink.mcp_tools import TOOL_MODULES
from flowlink.mcp_tools.exec_tasks import ExecTasks

SERVER_NAME = "flowlink"
INSTRUCTIONS = (
    "FlowLink runs shell commands on enrolled servers through their edge relay. Every command is "
    "judged by Shield: denied commands are refused with reasons, risky ones need human approval. "
    "Use `agents` to see the servers, `exec` to run a command, `history` to see past results."
)


def build_mcp_server(runtime: GatewayRuntime) -> MCPServer:
    tasks = ExecTasks(runtime)
    server = MCPServer(SERVER_NAME, version=__version__, instructions=INSTRUCTIONS, extensions=[tasks])
    for module_name in TOOL_MODULES:
        importlib.import_module(module_name).register(server, runtime)
    forbid_unknown_arguments(server)
    # Outermost first: params errors name the field whatever raised them, also in tasks/*.
    server.middleware.append(ParamsErrorMiddleware(server))
    server.middleware.append(tasks.middleware(server))
    return server


def forbid_unknown_arguments(server: MCPServer) -> None:
    """Make every tool refuse arguments it does not declare, and say so in its inputSchema.

    The SDK's argument models ignore unknown keys, so a typo such as ``timout`` would run
    the command with the default silently; ``extra="forbid"`` turns it into the tool
    error naming the argument that every other schema violation gets.
    """
    for tool in server._tool_manager.list_tools():
        loose = tool.fn_metadata.arg_model
        strict = type(loose.__name__, (_PlainArgumentErrors, loose), {
            "__module__": loose.__module__,
            "model_config": ConfigDict(**{**loose.model_config, "extra": "forbid"}),
        })
        tool.fn_metadata.arg_model = strict
        tool.parameters = strict.model_json_schema(by_alias=True)


class ArgumentsError(ValidationError):
    """A tool's arguments failing its schema, told in one plain line per problem.

    The SDK reports a tool's ``ValidationError`` as ``Error executing tool <name>: <str>``;
    pydantic's own text is a multi-line dump naming the generated model and a docs URL.
    This keeps the structured ``errors()`` (the SDK logs their locations) and changes only
    the text the model reads, e.g. ``unknown argument 'bogus' (expected: agent, command, ...)``.
    """

    expected: tuple[str, ...] = ()

    def __str__(self) -> str:
        errors = self.errors(include_url=False, include_input=False)
        unknown = [".".join(str(p) for p in e["loc"]) for e in errors if e["type"] == "extra_forbidden"]
        problems = []
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            plural = "s" if len(unknown) > 1 else ""
            takes = f"expected: {', '.join(self.expected)}" if self.expected else "it takes no arguments"
            problems.append(f"unknown argument{plural} {names} ({takes})")
        for error in errors:
            if error["type"] == "extra_forbidden":
                continue
            where = ".".join(str(p) for p in error["loc"]) or "arguments"
            if error["type"] == "missing":
                problems.append(f"missing argument {where!r}")
            else:
                problems.append(f"argument {where!r}: {error['msg']}")
        return "; ".join(problems) or "invalid arguments"


class _PlainArgumentErrors:
    """Mixed into every tool's argument model: validation failures raise ``ArgumentsError``."""

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().model_validate(obj, *args, **kwargs)  # type: ignore[misc]
        except ValidationError as exc:
            error = ArgumentsError.from_exception_data(exc.title, exc.errors())
            error.expected = tuple(
                field.alias or name for name, field in cls.model_fields.items()  # type: ignore[attr-defined]
            )
            raise error from None


def _field_problems(exc: ValidationError) -> list[dict[str, str]]:
    # Locations and messages only: the rejected values are the caller's data.
    return [
        {"field": ".".join(str(part) for part in error["loc"]) or "params", "problem": error["msg"]}
        for error in exc.errors(include_url=False, include_input=False)
    ]


class ParamsErrorMiddleware:
    """JSON-RPC params errors that name the field (-32602), and unknown tools as -32602.

    The SDK answers malformed params with a bare "Invalid request parameters"; this
    re-raises it naming each bad field. ``tools/call`` for a tool that does not exist is
    a protocol error per the MCP spec (2025-11-25 "Error Handling"), so it becomes -32602
    here too. A tool's own arguments failing its input schema stay a tool execution error
    (``isError``, naming the field), as SEP-1303 asks, so a model can correct itself.
    """

    def __init__(self, server: MCPServer):
        self.server = server

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        if ctx.method == "tools/call" and isinstance(ctx.params, Mapping):
            name = ctx.params.get("name")
            if isinstance(name, str) and self.server._tool_manager.get_tool(name) is None:
                raise MCPError(INVALID_PARAMS, f"Unknown tool: {name}", data={"field": "name"})
        try:
            return await call_next(ctx)
        except ValidationError as exc:
            problems = _field_problems(exc)
            summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
            raise MCPError(INVALID_PARAMS, f"Invalid params: {summary}", data={"errors": problems}) from exc


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
