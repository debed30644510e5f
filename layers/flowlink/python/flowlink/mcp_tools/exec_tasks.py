"""MCP tasks for ``exec``: a command that waits for approval (or runs long), followed as a task.

Two protocol generations define tasks, differently; both are served:

* **2025-11-25** (the experimental core tasks): the client asks for a task with a ``task``
  param on ``tools/call``; the server declares ``capabilities.tasks`` (``list``, ``cancel``,
  ``requests.tools.call``) in ``initialize`` and ``execution.taskSupport: "optional"`` on exec
  in ``tools/list``; the exec then returns at once with a ``CreateTaskResult`` and the client
  uses ``tasks/get``, ``tasks/result`` (the exec's own ``CallToolResult``, with the
  related-task ``_meta``), ``tasks/list`` and ``tasks/cancel``. Other tools refuse a
  ``task`` param with -32601, as the spec asks for tools without task support.
* **2026-07-28**: tasks left the core for the ``io.modelcontextprotocol/tasks`` extension
  (SEP-2663). A client declares it in the request's ``clientCapabilities``; the server
  decides per call: an exec that is still waiting for approval or running when exec's
  bounded wait ends answers ``resultType: "task"`` instead of a "still running" handle.
  ``tasks/get`` inlines the final result, ``tasks/update`` and ``tasks/cancel`` acknowledge
  with an empty result, and a client that did not declare the extension gets -32021.
  ``failed`` is reserved for JSON-RPC errors there, so a denied or refused command is
  ``completed`` with an ``isError`` result.

The task itself is ``flowlink.command_tasks`` (durable, org-scoped, id = command id).
mcp 2.3.0 ships the task types but no task runtime, so the SDK seams used are: an
``Extension`` whose version-gated ``MethodBinding``s serve ``tasks/*``, and a server
middleware for ``tools/call``, ``initialize`` and ``tools/list``, because only a middleware
runs after the per-version result sieve, which strips a ``CreateTaskResult`` (and
``capabilities.tasks``, ``execution``) from a 2025-11-25 answer.

``tasks/result`` cannot block for hours behind API Gateway: it waits as long as exec does
(``FLOWLINK_EXEC_WAIT_SECONDS``) and then answers -32001 with the task's status, so the
client polls ``tasks/get`` and asks again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.server import require_client_extension
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    CallToolResult,
    CancelTaskRequestParams,
    GetTaskPayloadRequestParams,
    GetTaskRequestParams,
    PaginatedRequestParams,
    RequestParams,
    TextContent,
)
from mcp_types.jsonrpc import REQUEST_TIMEOUT
from mcp_types.methods import serialize_server_result
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from flowlink.auth import AuthContext
from flowlink.command_tasks import (
    CANCELLED,
    FAILED,
    CommandTask,
    CommandTasks,
    TaskNotFinished,
    denial,
)
from flowlink.errors import FlowLinkError
from flowlink.mcp_tools.common import domain_tool_error, exec_outcome, request_caller
from flowlink.storage import TERMINAL_STATUSES

T = TypeVar("T")

EXEC_TOOL = "exec"
LEGACY_TASKS_VERSION = "2025-11-25"
EXTENSION_ID = "io.modelcontextprotocol/tasks"
RELATED_TASK_META = "io.modelcontextprotocol/related-task"
IMMEDIATE_RESPONSE_META = "io.modelcontextprotocol/model-immediate-response"
LEGACY = frozenset({LEGACY_TASKS_VERSION})
MODERN = frozenset(MODERN_PROTOCOL_VERSIONS)
LEGACY_CAPABILITY = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}


class UpdateTaskRequestParams(RequestParams):
    """``tasks/update`` (2026-07-28 tasks extension): answers to a task's input requests."""

    task_id: str
    input_responses: dict[str, Any] = Field(default_factory=dict)


def legacy_task_requested(ctx: ServerRequestContext[Any, Any]) -> bool:
    """A 2025-11-25 ``tools/call`` with a ``task`` param: the caller follows the call as a task."""
    params = ctx.params
    return ctx.protocol_version in LEGACY and isinstance(params, Mapping) and params.get("task") is not None


def _declares_extension(ctx: ServerRequestContext[Any, Any]) -> bool:
    capabilities = ctx.session.client_capabilities
    return bool(capabilities and capabilities.extensions and EXTENSION_ID in capabilities.extensions)


def _caller(ctx: ServerRequestContext[Any, Any]) -> AuthContext:
    auth = request_caller(ctx.request)
    if auth is None:
        # Fail closed; McpAuthMiddleware never lets such a request this far.
        raise MCPError(INTERNAL_ERROR, "unauthenticated request")
    return auth


async def _domain(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a task query off the event loop; its domain errors become JSON-RPC errors."""
    try:
        return await anyio.to_thread.run_sync(partial(function, *args, **kwargs))
    except TaskNotFinished as exc:
        data = {"taskId": exc.extra.get("task_id"), "status": exc.extra.get("status"),
                "pollInterval": exc.extra.get("poll_interval_ms")}
        raise MCPError(REQUEST_TIMEOUT, exc.detail, data=data) from exc
    except FlowLinkError as exc:
        # Unknown or foreign task ids, bad cursors, impossible cancellations: all -32602
        # in both generations of the spec.
        raise MCPError(INVALID_PARAMS, exc.detail, data={"code": exc.code}) from exc


def _task_fields(task: CommandTask, version: str) -> dict[str, Any]:
    legacy = version in LEGACY
    fields = {
        "taskId": task.task_id,
        # The extension's "failed" means a JSON-RPC error; ours are tool results.
        "status": "completed" if task.status == FAILED and not legacy else task.status,
        "statusMessage": task.message,
        "createdAt": task.created_at,
        "lastUpdatedAt": task.updated_at,
        # Commands are kept, not expired: a task lives as long as its record.
        "ttl" if legacy else "ttlMs": None,
    }
    if task.poll_interval_ms is not None:
        fields["pollInterval" if legacy else "pollIntervalMs"] = task.poll_interval_ms
    return fields


class ExecTasks(Extension):
    """Task support for exec: the ``tasks/*`` methods (here) and ``middleware`` for the rest."""

    identifier = EXTENSION_ID

    def __init__(self, runtime: Any):
        self.runtime = runtime
        self.tasks = CommandTasks(runtime.commands)
        self._server: MCPServer | None = None

    def methods(self) -> list[MethodBinding]:
        both = LEGACY | MODERN
        return [
            MethodBinding("tasks/get", GetTaskRequestParams, self._get, both),
            MethodBinding("tasks/cancel", CancelTaskRequestParams, self._cancel, both),
            MethodBinding("tasks/result", GetTaskPayloadRequestParams, self._result, LEGACY),
            MethodBinding("tasks/list", PaginatedRequestParams, self._list, LEGACY),
            MethodBinding("tasks/update", UpdateTaskRequestParams, self._update, MODERN),
        ]

    def middleware(self, server: MCPServer) -> Callable[..., Any]:
        """The server middleware that creates tasks from exec calls and declares task support."""
        self._server = server
        return self._middleware

    # -- tools/call, initialize, tools/list -------------------------------------------

    async def _middleware(self, ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        params = ctx.params if isinstance(ctx.params, Mapping) else {}
        if ctx.method == "tools/call" and params.get("name") == EXEC_TOOL:
            if legacy_task_requested(ctx):
                return await self._exec_as_task(ctx, call_next, LEGACY_TASKS_VERSION)
            if ctx.protocol_version in MODERN and _declares_extension(ctx):
                return await self._exec_as_task(ctx, call_next, ctx.protocol_version)
        elif ctx.method == "tools/call" and legacy_task_requested(ctx):
            # The other tools' taskSupport is "forbidden" (absent), for which the spec asks -32601.
            raise MCPError(
                METHOD_NOT_FOUND,
                f"tool {params.get('name')!r} cannot run as a task (only exec supports task-augmented calls)",
            )
        result = await call_next(ctx)
        if not isinstance(result, dict):
            return result
        if ctx.method == "initialize" and result.get("protocolVersion") in LEGACY:
            capabilities = result.setdefault("capabilities", {})
            capabilities["tasks"] = LEGACY_CAPABILITY
        elif ctx.method == "tools/list" and ctx.protocol_version in LEGACY:
            for tool in result.get("tools") or []:
                if tool.get("name") == EXEC_TOOL:
                    tool["execution"] = {"taskSupport": "optional"}
        return result

    async def _exec_as_task(self, ctx: ServerRequestContext[Any, Any], call_next: Any, version: str) -> Any:
        # The exec tool itself runs (validation, Shield, the record, dispatch or approval);
        # at 2025-11-25 it does not wait for the result (legacy_task_requested).
        result = await call_next(ctx)
        structured = result.get("structuredContent") if isinstance(result, dict) else None
        if not isinstance(structured, dict) or result.get("isError") or not structured.get("command_id"):
            # Refused at once (bad arguments, unknown agent, Shield deny): nothing to follow.
            return result
        if version in MODERN and structured.get("status") in TERMINAL_STATUSES:
            # Finished within the call: the extension lets the server answer directly.
            return result
        task = await _domain(self.tasks.get, _caller(ctx), structured["command_id"])
        if version in LEGACY:
            immediate = f"exec runs as task {task.task_id}: {task.message}"
            return {"task": _task_fields(task, version), "_meta": {IMMEDIATE_RESPONSE_META: immediate}}
        created: dict[str, Any] = {"resultType": "task", **_task_fields(task, version)}
        if "_meta" in result:
            created["_meta"] = result["_meta"]  # the 2026 serverInfo stamp the SDK put on the call
        return created

    # -- what exec answers for a finished command ---------------------------------------

    def _tool_result(self, view: dict[str, Any], version: str) -> dict[str, Any]:
        """Exactly the ``CallToolResult`` ``exec`` returns for this command (called again
        with its idempotency key): the same conversion, errors and per-version shape."""
        server = self._server
        if server is None:
            raise MCPError(INTERNAL_ERROR, "exec task support is not installed")
        tool = server._tool_manager.get_tool(EXEC_TOOL)
        try:
            denied = denial(view)
            if denied is not None:
                raise domain_tool_error(denied)
            result = tool.fn_metadata.convert_result(exec_outcome(view))
        except ToolError as exc:
            # As the SDK answers a ToolError raised in a tool (Tool.run names the tool,
            # MCPServer turns it into an isError result). tests/integration/test_exec_tasks.py
            # compares this with a real exec call.
            text = f"Error executing tool {tool.name}: {exc}"
            result = CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        return serialize_server_result("tools/call", version, dumped)

    # -- tasks/* ---------------------------------------------------------------------

    def _caller_for_method(self, ctx: ServerRequestContext[Any, Any]) -> AuthContext:
        if ctx.protocol_version in MODERN:
            # The extension: tasks/* from a client that did not declare it → -32021.
            require_client_extension(ctx, EXTENSION_ID)
        return _caller(ctx)

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: GetTaskRequestParams) -> dict[str, Any]:
        task = await _domain(self.tasks.get, self._caller_for_method(ctx), params.task_id)
        fields = _task_fields(task, ctx.protocol_version)
        if ctx.protocol_version in MODERN and task.terminal and task.status != CANCELLED:
            fields["result"] = self._tool_result(task.view, ctx.protocol_version)
        return fields

    async def _result(
        self, ctx: ServerRequestContext[Any, Any], params: GetTaskPayloadRequestParams
    ) -> dict[str, Any]:
        auth = self._caller_for_method(ctx)
        view = await _domain(
            self.tasks.outcome, auth, params.task_id, wait_seconds=self.runtime.settings.exec_wait_seconds
        )
        result = self._tool_result(view, ctx.protocol_version)
        result["_meta"] = {**(result.get("_meta") or {}), RELATED_TASK_META: {"taskId": params.task_id}}
        return result

    async def _list(self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams) -> dict[str, Any]:
        tasks, next_cursor = await _domain(self.tasks.list, self._caller_for_method(ctx), cursor=params.cursor)
        listing: dict[str, Any] = {"tasks": [_task_fields(t, ctx.protocol_version) for t in tasks]}
        if next_cursor:
            listing["nextCursor"] = next_cursor
        return listing

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: CancelTaskRequestParams) -> dict[str, Any]:
        task = await _domain(self.tasks.cancel, self._caller_for_method(ctx), params.task_id)
        # 2025-11-25 answers with the (now cancelled) task; the extension with an empty ack.
        return _task_fields(task, ctx.protocol_version) if ctx.protocol_version in LEGACY else {}

    async def _update(self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskRequestParams) -> dict[str, Any]:
        # exec never asks the client for input (approvals come from humans elsewhere), so
        # every response is for a key that is not outstanding and is ignored, as the
        # extension asks; the task must still exist and be the caller's org's.
        await _domain(self.tasks.get, self._caller_for_method(ctx), params.task_id)
        return {}
