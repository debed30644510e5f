"""FlowLink edge relay: the daemon on each customer host that runs what the gateway sends.

Entry points: ``flowlink-relay`` / ``python -m edge_relay`` (``edge_relay.__main__``),
``edge_relay.daemon.RelayDaemon`` and ``edge_relay.enroll.enroll`` for embedding
(e.g. the local stack). See docs/relay.md.
"""
