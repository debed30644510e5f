"""The `make bench` driver: section selection and sections that are not built yet."""

from __future__ import annotations

import sys
import types

import pytest

from scripts import bench

pytestmark = pytest.mark.unit


def test_bench_resolves_short_and_module_names() -> None:
    assert bench.resolve([]) == bench.SECTIONS
    assert bench.resolve(["shield"]) == ["scripts.bench_shield"]
    assert bench.resolve(["scripts.bench_shield"]) == ["scripts.bench_shield"]


def test_bench_unknown_section_exits_with_known_names() -> None:
    with pytest.raises(SystemExit, match="known: shield"):
        bench.resolve(["nonsense"])


def test_bench_reports_missing_section_as_not_built_and_runs_the_rest(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = []
    present = types.ModuleType("scripts.bench_present")
    present.run = lambda args: calls.append(args.quick)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "scripts.bench_present", present)
    monkeypatch.setattr(bench, "SECTIONS", ["scripts.bench_absent_for_test", "scripts.bench_present"])
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "absent_for_test" in out and "not built: skipped" in out
    assert calls == [True]


def test_bench_failing_section_is_reported_and_sets_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = types.ModuleType("scripts.bench_broken")

    def run(args: object) -> None:
        raise RuntimeError("boom")

    broken.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "scripts.bench_broken", broken)
    monkeypatch.setattr(bench, "SECTIONS", ["scripts.bench_broken"])
    assert bench.main([]) == 1
    assert "section broken FAILED" in capsys.readouterr().out
