"""The per-process wiring of the control plane: settings, store, relay channel, exec service.

Built once per process (and per stack, so tests with their own table prefix get their
own); Lambda handlers and the FastAPI app both take their collaborators from here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from flowlink.commands import CommandService
from flowlink.relays import RelayChannel, command_signals
from flowlink.settings import Settings
from flowlink.storage import Store


@dataclass
class GatewayRuntime:
    settings: Settings
    store: Store
    channel: RelayChannel
    commands: CommandService


def build_runtime(
    settings: Settings, *, store: Store | None = None, channel: RelayChannel | None = None
) -> GatewayRuntime:
    store = store or Store(settings)
    channel = channel or RelayChannel(settings)
    commands = CommandService(settings, store, channel, signals=command_signals)
    return GatewayRuntime(settings=settings, store=store, channel=channel, commands=commands)


_lock = threading.Lock()
_runtimes: dict[tuple, GatewayRuntime] = {}


def runtime_for(settings: Settings, *, management_url: str | None = None) -> GatewayRuntime:
    """A cached runtime for these settings (Lambda containers reuse it across invocations).

    ``management_url`` is used when FLOWLINK_WS_MANAGEMENT_URL is unset: a WebSocket
    handler derives it from the event's domain name and stage.
    """
    endpoint = settings.ws_management_url or management_url
    key = (
        settings.table_prefix,
        settings.region,
        endpoint,
        settings.signing_key_pem,
        settings.signing_key_file,
        settings.ws_url,
        settings.exec_wait_seconds,
    )
    with _lock:
        runtime = _runtimes.get(key)
        if runtime is None:
            runtime = build_runtime(settings, channel=RelayChannel(settings, endpoint_url=endpoint))
            _runtimes[key] = runtime
        return runtime
