"""The control-plane gateway: FastAPI app (MCP + REST), its middleware, and the local emulation.

``ROUTERS`` lists optional REST routers other FlowLink parts add to the app, as
``"module:attribute"`` strings (e.g. the audit API). Ask the lead to extend it.
"""

ROUTERS: list[str] = [
    "flowlink.audit.api:router",
    "flowlink.approvals.api:router",
    "flowlink.vault_api:router",
    "flowlink.org_api:router",
]


def create_app(*args, **kwargs):
    from flowlink.gateway.app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["ROUTERS", "create_app"]
