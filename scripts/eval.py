"""`make eval`: score Shield on the labelled command corpus and print the figures.

Reads ``commands-dev.jsonl`` (one JSON object per line: ``cmd``, ``label``, ``category``,
``note``, optional ``technique``), runs the engine on every command with level 2 off, on,
or both, and prints per label and per category the confusion table (label x decision)
and the four goal rates:

* deny blocked (decision deny or hard_ask) — goal >= 99%
* evasion_obfuscated blocked — goal >= 97%
* allow frictionless (auto or soft_ask) — goal >= 98%
* ask not auto — goal >= 95%

``--show-errors`` lists every command whose decision misses its label's goal.
Exits 0 whatever the figures are (they are measurements, not assertions); exits 2 with
a message when the corpus cannot be read. Never executes the corpus.

Usage: python -m scripts.eval [--corpus PATH] [--semantic on|off|both] [--show-errors]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from shield.engine import Shield
from shield.model import Decision

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "commands-dev.jsonl"
DECISIONS = [d.value for d in Decision]
LABELS = ["deny", "ask", "allow"]
GOALS = {
    "deny blocked (deny|hard_ask)": 0.99,
    "evasion_obfuscated blocked": 0.97,
    "allow frictionless (auto|soft_ask)": 0.98,
    "ask not auto": 0.95,
}


class CorpusError(Exception):
    """The corpus file is missing or malformed."""


@dataclass(frozen=True)
class Entry:
    cmd: str
    label: str
    category: str
    note: str
    technique: str | None


def load_corpus(path: Path) -> list[Entry]:
    """Read and validate the corpus; raises ``CorpusError`` naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CorpusError(f"cannot read corpus {path}: {exc.strerror or exc}") from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            entry = Entry(
                cmd=row["cmd"],
                label=row["label"],
                category=row["category"],
                note=row.get("note", ""),
                technique=row.get("technique"),
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CorpusError(f"{path}:{number}: not a corpus entry ({exc})") from None
        if entry.label not in LABELS:
            raise CorpusError(f"{path}:{number}: unknown label {entry.label!r}")
        entries.append(entry)
    if not entries:
        raise CorpusError(f"{path}: no entries")
    return entries


def meets_goal(label: str, decision: str) -> bool:
    """Whether a decision is acceptable for a label under the issue's goals."""
    if label == "deny":
        return decision in ("deny", "hard_ask")
    if label == "allow":
        return decision in ("auto", "soft_ask")
    return decision != "auto"


def _rate(results: list[tuple[Entry, str]], predicate) -> tuple[int, int]:
    chosen = [(e, d) for e, d in results if predicate(e)]
    good = sum(1 for e, d in chosen if meets_goal(e.label, d))
    return good, len(chosen)


def _table(title: str, rows: dict[str, Counter], out) -> None:
    width = max([len(title)] + [len(k) for k in rows]) + 2
    print(f"{title:<{width}}" + "".join(f"{d:>10}" for d in DECISIONS) + f"{'total':>8}", file=out)
    for key, counts in rows.items():
        print(
            f"{key:<{width}}" + "".join(f"{counts[d]:>10}" for d in DECISIONS) + f"{sum(counts.values()):>8}",
            file=out,
        )


def run(
    entries: list[Entry], shield: Shield, label: str, show_errors: bool, out=sys.stdout
) -> dict[str, float]:
    """Analyse every entry and print the report; returns the goal rates."""
    started = time.perf_counter()
    results = [(entry, shield.analyze(entry.cmd).decision.value) for entry in entries]
    elapsed = time.perf_counter() - started
    print(
        f"\n=== Shield eval: {label} ({len(entries)} commands, {elapsed * 1000 / len(entries):.3f} ms/command) ===",
        file=out,
    )

    by_label: dict[str, Counter] = {lab: Counter() for lab in LABELS}
    by_category: dict[str, Counter] = defaultdict(Counter)
    for entry, decision in results:
        by_label[entry.label][decision] += 1
        by_category[f"{entry.category}/{entry.label}"][decision] += 1
    print("\nconfusion by label (rows: label, columns: decision)", file=out)
    _table("label", by_label, out)
    print("\nconfusion by category/label", file=out)
    _table("category/label", dict(sorted(by_category.items())), out)

    rates = {
        "deny blocked (deny|hard_ask)": _rate(results, lambda e: e.label == "deny"),
        "evasion_obfuscated blocked": _rate(results, lambda e: e.category == "evasion_obfuscated"),
        "allow frictionless (auto|soft_ask)": _rate(results, lambda e: e.label == "allow"),
        "ask not auto": _rate(results, lambda e: e.label == "ask"),
    }
    print("\ngoal rates", file=out)
    figures: dict[str, float] = {}
    for name, (good, total) in rates.items():
        value = good / total if total else 1.0
        figures[name] = value
        status = "ok" if value >= GOALS[name] else "BELOW GOAL"
        print(
            f"  {name:<38} {value * 100:6.2f}%  ({good}/{total})  goal >= {GOALS[name] * 100:.0f}%  {status}",
            file=out,
        )

    errors = [(e, d) for e, d in results if not meets_goal(e.label, d)]
    print(f"\nmisclassified: {len(errors)}", file=out)
    if show_errors:
        for entry, decision in errors:
            extra = f" [{entry.technique}]" if entry.technique else ""
            one_line = entry.cmd.replace("\n", "\\n")
            print(f"  {entry.label:>5} -> {decision:<8} {entry.category}{extra}: {one_line}", file=out)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.eval", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=DEFAULT_CORPUS, help=f"corpus JSONL (default {DEFAULT_CORPUS})"
    )
    parser.add_argument(
        "--semantic",
        choices=["on", "off", "both"],
        default=None,
        help="run with level 2 on, off or both (default: both when the model is available)",
    )
    parser.add_argument("--show-errors", action="store_true", help="list misclassified commands")
    args = parser.parse_args(argv)

    try:
        entries = load_corpus(args.corpus)
    except CorpusError as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 2

    modes: list[str]
    semantic_shield = None
    if args.semantic in (None, "both", "on"):
        semantic_shield = Shield(semantic=True, cache_size=0)
        available = getattr(semantic_shield.semantic, "available", False)
        if args.semantic is None:
            modes = ["off", "on"] if available else ["off"]
        else:
            modes = ["off", "on"] if args.semantic == "both" else ["on"]
        if not available:
            name = getattr(semantic_shield.semantic, "name", "not installed")
            print(
                f"eval: level 2 unavailable ({name}); semantic runs use rules and score only", file=sys.stderr
            )
    else:
        modes = ["off"]

    for mode in modes:
        if mode == "off":
            run(entries, Shield(semantic=False, cache_size=0), "level 2 off", args.show_errors)
        else:
            assert semantic_shield is not None
            name = getattr(semantic_shield.semantic, "name", "semantic")
            run(entries, semantic_shield, f"level 2 on ({name})", args.show_errors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
