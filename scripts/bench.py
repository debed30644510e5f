"""`make bench`: runs FlowLink's benchmark sections in order and prints their figures.

Each section is a module with ``run(args) -> None`` listed in ``SECTIONS``. A section
whose module does not exist yet is reported as "not built" and skipped, so the driver
works while the parts are being written. Figures are printed, never asserted.

Usage:
    .venv/bin/python -m scripts.bench                 # every section
    .venv/bin/python -m scripts.bench shield          # one section (short or module name)
    .venv/bin/python -m scripts.bench shield --quick  # fewer repetitions
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

SECTIONS = ["scripts.bench_shield", "scripts.bench_stack", "scripts.bench_approvals", "scripts.bench_audit"]
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "commands-dev.jsonl"


def short_name(module: str) -> str:
    return module.rsplit(".", 1)[-1].removeprefix("bench_")


def resolve(requested: list[str]) -> list[str]:
    """Section modules for the names given on the command line (all when none).

    Raises:
        SystemExit: a name matches no section.
    """
    if not requested:
        return list(SECTIONS)
    by_name = {short_name(module): module for module in SECTIONS} | {module: module for module in SECTIONS}
    unknown = [name for name in requested if name not in by_name]
    if unknown:
        known = ", ".join(short_name(module) for module in SECTIONS)
        raise SystemExit(f"unknown bench section(s): {', '.join(unknown)} (known: {known})")
    return [by_name[name] for name in requested]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Print FlowLink's benchmark figures.")
    parser.add_argument("sections", nargs="*", help="sections to run: " + ", ".join(map(short_name, SECTIONS)))
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="commands to time (JSONL, 'cmd' field)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, rougher figures")
    parser.add_argument("--accurate", action="store_true", help="also time level 2 with the full MiniLM (slow)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    failed = 0
    for module_name in resolve(args.sections):
        title = short_name(module_name)
        print(f"\n== {title} ({module_name}) ==", flush=True)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                print("not built: skipped")
                continue
            raise
        started = time.perf_counter()
        try:
            module.run(args)
        except Exception:  # noqa: BLE001 - one broken section must not hide the others' figures
            failed += 1
            traceback.print_exc()
            print(f"section {title} FAILED")
            continue
        print(f"-- {title} done in {time.perf_counter() - started:.1f}s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
