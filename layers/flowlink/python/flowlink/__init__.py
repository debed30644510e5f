"""FlowLink's shared domain package: the Lambda layer every handler, the relay and the CLI use.

Holds settings, storage, auth, audit, the relay protocol, the MCP tool registry and the
gateway app. It never reads the environment outside ``flowlink.settings``.
"""

__version__ = "0.1.0"
