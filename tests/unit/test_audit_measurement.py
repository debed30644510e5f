"""Unit tests of code measurement and comparison (binary attestation, RFC-002 layer 2)."""

from __future__ import annotations

import pytest
from flowlink import attestation
from flowlink.errors import Conflict

pytestmark = pytest.mark.unit


def _package(root, files: dict[str, str]):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_attestation_measure_names_every_file_except_bytecode_caches(tmp_path):
    root = _package(tmp_path / "pkg", {"a.py": "x = 1\n", "sub/b.yaml": "k: v\n", "__pycache__/a.pyc": "junk"})
    measurement = attestation.measure({"pkg": root}, component="relay")
    assert sorted(measurement["files"]) == ["pkg/a.py", "pkg/sub/b.yaml"]
    assert (measurement["v"], measurement["component"]) == (1, "relay")
    again = attestation.measure({"pkg": root}, component="relay")
    assert again["digest"] == measurement["digest"]


def test_attestation_compare_attested_then_tampered_names_the_file(tmp_path):
    root = _package(tmp_path / "pkg", {"a.py": "x = 1\n", "b.py": "y = 2\n"})
    baseline = attestation.measure({"pkg": root}, component="relay")
    assert attestation.compare(baseline, attestation.measure({"pkg": root}, component="relay"))["status"] == "ATTESTED"
    (root / "a.py").write_text("x = 2\n")
    (root / "c.py").write_text("new\n")
    (root / "b.py").unlink()
    verdict = attestation.compare(baseline, attestation.measure({"pkg": root}, component="relay"))
    assert verdict["status"] == "TAMPERED"
    assert (verdict["changed"], verdict["added"], verdict["removed"]) == (["pkg/a.py"], ["pkg/c.py"], ["pkg/b.py"])


def test_attestation_missing_measurement_is_tampered_and_missing_baseline_is_a_conflict():
    baseline = {"files": {"pkg/a.py": "0" * 64}, "digest": "d"}
    assert attestation.compare(baseline, None)["status"] == "TAMPERED"
    with pytest.raises(Conflict):
        attestation.compare(None, {"files": {}})


def test_attestation_measure_relay_covers_the_relay_and_its_interpreter():
    measurement = attestation.measure_relay()
    assert "interpreter/python" in measurement["files"]
    assert any(name.startswith("edge_relay/") for name in measurement["files"])
