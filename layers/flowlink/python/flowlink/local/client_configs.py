"""Ready-to-paste MCP client configurations for the hosted (or local) FlowLink endpoint.

Each client spells a remote Streamable-HTTP server differently:

- Claude Code: ``.mcp.json`` in the project, ``{"mcpServers": {name: {"type": "http", "url", "headers"}}}``;
- Cursor: ``~/.cursor/mcp.json`` (or ``.cursor/mcp.json``), ``{"mcpServers": {name: {"url", "headers"}}}``;
- VS Code: ``.vscode/mcp.json``, ``{"servers": {name: {"type": "http", "url", "headers"}}}``;
- Windsurf: ``~/.codeium/windsurf/mcp_config.json``, ``{"mcpServers": {name: {"serverUrl", "headers"}}}``.

Pure data: no files are written here (the user decides where a key may live).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SERVER_NAME = "flowlink"


@dataclass(frozen=True)
class ClientConfig:
    client: str
    path: str
    document: dict[str, Any]

    def text(self) -> str:
        return json.dumps(self.document, indent=2)


def client_configs(mcp_url: str, api_key: str, *, server_name: str = SERVER_NAME) -> list[ClientConfig]:
    """The four client configs for ``mcp_url`` authenticated with ``api_key`` (Bearer)."""
    headers = {"Authorization": f"Bearer {api_key}"}
    return [
        ClientConfig("Claude Code", ".mcp.json",
                     {"mcpServers": {server_name: {"type": "http", "url": mcp_url, "headers": headers}}}),
        ClientConfig("Cursor", "~/.cursor/mcp.json",
                     {"mcpServers": {server_name: {"url": mcp_url, "headers": headers}}}),
        ClientConfig("VS Code", ".vscode/mcp.json",
                     {"servers": {server_name: {"type": "http", "url": mcp_url, "headers": headers}}}),
        ClientConfig("Windsurf", "~/.codeium/windsurf/mcp_config.json",
                     {"mcpServers": {server_name: {"serverUrl": mcp_url, "headers": headers}}}),
    ]


def client_config_lines(mcp_url: str, api_key: str) -> list[str]:
    """The four configs as indented text lines, each headed by its client and file, for a banner."""
    lines: list[str] = []
    for config in client_configs(mcp_url, api_key):
        lines += ["", f"  {config.client}  ({config.path})"]
        lines += ["    " + line for line in config.text().splitlines()]
    return lines
