"""`statemachines/*.asl.json` pass asl-validator (npm), which `make lint` also runs: cfn-lint
does not look inside a state machine's DefinitionUri. `make tools` (run by `make test`)
installs the validator into .venv-tools/node; without npm the check is skipped loudly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from flowlink.local.provision import find_template

pytestmark = pytest.mark.integration

REPO = find_template().parent
VALIDATOR = REPO / ".venv-tools" / "node" / "node_modules" / ".bin" / "asl-validator"
MACHINES = sorted((REPO / "statemachines").glob("*.asl.json"))


@pytest.mark.parametrize("machine", MACHINES, ids=lambda path: path.name)
def test_statemachine_passes_asl_validator(machine: Path):
    if not VALIDATOR.exists():
        pytest.skip(f"ASL VALIDATOR NOT INSTALLED at {VALIDATOR}: run `make tools` (needs npm)")
    result = subprocess.run([str(VALIDATOR), "--json-path", str(machine)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout + result.stderr


def test_statemachine_callback_task_has_a_timeout():
    import json

    definition = json.loads((REPO / "statemachines" / "approval.asl.json").read_text())
    waits = [s for s in definition["States"].values() if s.get("Resource", "").endswith(".waitForTaskToken")]
    assert waits and all("TimeoutSeconds" in s or "TimeoutSecondsPath" in s for s in waits)
