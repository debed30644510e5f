"""Shield: FlowLink's pure command-analysis engine (levels 1-4).

Entry point: ``shield.analyze(command, context) -> Verdict`` or a reusable
``shield.Shield`` instance. Pure: no network, no environment reads, no files
other than the package's own data. Never raises on input.
"""

from shield.model import (
    Context,
    Contribution,
    Decision,
    HostFacts,
    IntentMatch,
    ParseResult,
    Redirect,
    RuleHit,
    SimpleCommand,
    Verdict,
)

__all__ = [
    "Context",
    "Contribution",
    "Decision",
    "HostFacts",
    "IntentMatch",
    "ParseResult",
    "Redirect",
    "RuleHit",
    "Shield",
    "SimpleCommand",
    "Verdict",
    "analyze",
]


def __getattr__(name: str):
    # The engine pulls in tree-sitter and the rule packs; import it on first use so
    # `from shield.model import ...` stays cheap for the gateway's cold start.
    if name in ("Shield", "analyze"):
        from shield import engine

        return getattr(engine, name)
    raise AttributeError(name)
