"""`make bench` section: Shield latency, throughput, cold start and memory, with and without level 2.

Every configuration is measured in a fresh subprocess (``python -m scripts.bench_shield
--worker ...``), so cold start is a real cold start and peak memory (``ru_maxrss``)
belongs to that configuration alone. In the worker:

* cold start: importing ``shield.engine`` and building ``Shield(semantic=...)``, then the
  first command;
* per-command latency, one command at a time, warm: every corpus command is analysed
  once to warm up (tree-sitter, word caches), then timed ``repeat`` times with the
  engine's verdict cache bypassed, so the figures are real work; the cached figure is
  printed separately and labelled;
* throughput: commands per second over the same uncached sequential loop;
* level 2 alone: ``SemanticLevel.intents`` latency and its load time.

Figures are printed, never asserted (goals from issue 2 are shown next to them).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GOALS = {
    "off": "goal p50 <= 50 us, p99 <= 500 us",
    "on": "goal p50 <= 1 ms, p99 <= 5 ms",
    "load": "goal <= 1 s",
}


def _read_commands(corpus: Path) -> list[str]:
    with corpus.open(encoding="utf-8") as handle:
        return [json.loads(line)["cmd"] for line in handle if line.strip()]


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _maxrss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- worker (runs in a fresh interpreter) ---------------------------------------------------


def _build_engine(semantic_mode: str) -> tuple[Any, Callable[[str], Any], Callable[[str], Any] | None, str]:
    """(engine, analyse-uncached, analyse-cached or None, how the cache was bypassed)."""
    from shield.engine import Shield

    parameters = inspect.signature(Shield).parameters
    kwargs: dict[str, Any] = {}
    if semantic_mode == "off":
        kwargs["semantic"] = None
    else:
        from shield.semantic import SemanticLevel

        kwargs["semantic"] = SemanticLevel(mode="accurate" if semantic_mode == "accurate" else "fast")
    cache_bypass = "none found: every timed command is distinct from the warm-up text"
    for name, value in (("cache_size", 0), ("cache", False), ("use_cache", False)):
        if name in parameters:
            uncached_kwargs = dict(kwargs, **{name: value})
            engine = Shield(**uncached_kwargs)
            cached_engine = Shield(**kwargs)
            cache_bypass = f"Shield({name}={value!r})"
            break
    else:
        engine = Shield(**kwargs)
        cached_engine = None
    analyse = _analyse_method(engine)
    cached = _analyse_method(cached_engine) if cached_engine is not None else None
    return engine, analyse, cached, cache_bypass


def _analyse_method(engine: Any) -> Callable[[str], Any]:
    from shield.model import Context

    context = Context()
    for name in ("analyze", "check", "judge"):
        method = getattr(engine, name, None)
        if callable(method):
            return lambda command, _method=method: _method(command, context)
    raise RuntimeError("shield.engine.Shield has no analyze/check method")


def _time_each(analyse: Callable[[str], Any], commands: list[str], repeat: int) -> tuple[list[float], float]:
    """Wall-clock seconds of each call, and the process CPU seconds of the whole loop."""
    samples = []
    clock = time.perf_counter
    cpu_started = time.process_time()
    for _ in range(repeat):
        for command in commands:
            started = clock()
            analyse(command)
            samples.append(clock() - started)
    return samples, time.process_time() - cpu_started


def _summary(timed: tuple[list[float], float]) -> dict[str, float]:
    samples, cpu_seconds = timed
    return {
        "p50_us": _percentile(samples, 0.50) * 1e6,
        "p99_us": _percentile(samples, 0.99) * 1e6,
        "mean_us": statistics.fmean(samples) * 1e6,
        "cpu_us": cpu_seconds / len(samples) * 1e6 if samples else 0.0,
        "throughput": len(samples) / sum(samples) if samples else 0.0,
        "n": len(samples),
    }


def worker(semantic_mode: str, corpus: Path, repeat: int) -> dict[str, Any]:
    commands = _read_commands(corpus)
    started = time.perf_counter()
    cpu_started = time.process_time()
    try:
        engine, analyse, cached, cache_bypass = _build_engine(semantic_mode)
    except ModuleNotFoundError as exc:
        if exc.name != "shield.engine":
            raise
        return _semantic_only(semantic_mode, commands, repeat, started)
    load_s = time.perf_counter() - started
    load_cpu_s = time.process_time() - cpu_started
    started = time.perf_counter()
    first = analyse(commands[0])
    first_s = time.perf_counter() - started
    levels = list(getattr(first, "levels_run", []))

    # Warm-up on text that differs from the timed text (a trailing comment), so that an
    # engine whose cache cannot be switched off still does real work when timed.
    for command in commands:
        analyse(command + "\n# warm-up")
    uncached = _time_each(analyse, commands, 1 if cached is None else repeat)
    result: dict[str, Any] = {
        "engine": True,
        "load_s": load_s,
        "load_cpu_s": load_cpu_s,
        "first_s": first_s,
        "levels_run": levels,
        "cache_bypass": cache_bypass,
        "uncached": _summary(uncached),
    }
    timed_cached = cached if cached is not None else analyse
    for command in commands:
        timed_cached(command)
    result["cached"] = _summary(_time_each(timed_cached, commands, repeat))
    if semantic_mode != "off":
        result["semantic"] = _semantic_figures(getattr(engine, "semantic", None), commands, repeat)
    result["maxrss_mb"] = _maxrss_mb()
    return result


def _semantic_figures(level: Any, commands: list[str], repeat: int) -> dict[str, Any]:
    from shield.semantic import SemanticLevel

    if not isinstance(level, SemanticLevel):
        level = SemanticLevel()
    for command in commands:
        level.intents(command)
    return {"name": level.name, "available": level.available, **_summary(_time_each(level.intents, commands, repeat))}


def _semantic_only(semantic_mode: str, commands: list[str], repeat: int, started: float) -> dict[str, Any]:
    """Level 2 alone, while shield/engine.py does not exist yet."""
    result: dict[str, Any] = {"engine": False}
    if semantic_mode != "off":
        from shield.semantic import SemanticLevel

        level = SemanticLevel(mode="accurate" if semantic_mode == "accurate" else "fast")
        result["load_s"] = time.perf_counter() - started
        result["semantic"] = _semantic_figures(level, commands, repeat)
    result["maxrss_mb"] = _maxrss_mb()
    return result


# -- parent: spawn workers and print ---------------------------------------------------------


def _spawn(semantic_mode: str, corpus: Path, repeat: int) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "scripts.bench_shield", "--worker", semantic_mode, "--corpus", str(corpus),
         "--repeat", str(repeat)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"bench worker ({semantic_mode}) failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _line(label: str, figures: dict[str, float], goal: str = "") -> str:
    text = (
        f"  {label:<34} p50 {figures['p50_us']:>8.1f} us   p99 {figures['p99_us']:>8.1f} us   "
        f"{figures['throughput']:>7.0f} cmd/s   cpu {figures['cpu_us']:>7.1f} us/cmd   (n={figures['n']})"
    )
    return text + (f"   [{goal}]" if goal else "")


def run(args: argparse.Namespace) -> None:
    corpus: Path = args.corpus
    repeat = 1 if getattr(args, "quick", False) else 3
    modes = ["off", "on"] + (["accurate"] if getattr(args, "accurate", False) else [])
    commands = _read_commands(corpus)
    print(f"corpus: {corpus} ({len(commands)} commands), {repeat} timed pass(es), one command at a time")
    # Wall-clock percentiles suffer when other processes share the CPUs; the load average
    # and the per-command CPU time make such a run recognisable.
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    for mode in modes:
        title = {"off": "without level 2", "on": "with level 2 (fast)", "accurate": "with level 2 (accurate)"}[mode]
        figures = _spawn(mode, corpus, repeat)
        print(f"{title}:")
        if not figures["engine"]:
            print("  shield.engine is not built yet: engine figures skipped")
        else:
            print(
                f"  cold start (fresh process: import + Shield()) {figures['load_s'] * 1000:8.1f} ms"
                f"   cpu {figures['load_cpu_s'] * 1000:.1f} ms   [{GOALS['load']}]"
            )
            print(f"  first command after load                     {figures['first_s'] * 1000:8.1f} ms")
            print(f"  levels run: {', '.join(figures['levels_run']) or '?'}; cache bypass: {figures['cache_bypass']}")
            print(_line("per command, uncached (real work)", figures["uncached"], GOALS["off" if mode == "off" else "on"]))
            print(_line("per command, verdict cache hit", figures["cached"]))
        if "semantic" in figures:
            semantic = figures["semantic"]
            if not figures["engine"]:
                print(f"  level 2 load (fresh process)                 {figures['load_s'] * 1000:8.1f} ms")
            print(f"  level 2 alone ({semantic['name']}):")
            print(_line("SemanticLevel.intents", semantic))
        print(f"  peak memory (ru_maxrss)                      {figures['maxrss_mb']:8.1f} MB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Shield bench worker (use `python -m scripts.bench shield`).")
    parser.add_argument("--worker", choices=["off", "on", "accurate"], required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(worker(args.worker, args.corpus, args.repeat)))


if __name__ == "__main__":
    main()
