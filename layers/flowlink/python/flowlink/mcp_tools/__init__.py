"""The gateway's MCP tools, one module per tool.

Each module in ``TOOL_MODULES`` exposes ``register(server: MCPServer, runtime: GatewayRuntime)``
that adds its tool (with input schema, output schema and annotations) to the server.
Other FlowLink parts add tools by writing a module and asking the lead to extend this list.
"""

TOOL_MODULES: list[str] = [
    "flowlink.mcp_tools.exec_tool",
    "flowlink.mcp_tools.health_tool",
    "flowlink.mcp_tools.sysinfo_tool",
    "flowlink.mcp_tools.agents_tool",
    "flowlink.mcp_tools.list_tool",
    "flowlink.mcp_tools.read_tool",
    "flowlink.mcp_tools.history_tool",
    "flowlink.mcp_tools.approve_tool",
    "flowlink.mcp_tools.audit_tool",
    "flowlink.mcp_tools.secrets_tool",
    "flowlink.mcp_tools.fingerprint_tool",
]
