"""`template.yaml` passes the two offline validators CI and `make lint` run: `sam validate
--lint` (the SAM transform plus cfn-lint on its output) and plain `cfn-lint`.

aws-sam-cli pins its own boto3 and friends, so it lives in a separate tools virtualenv
(`.venv-tools`, created by `make test` / `make lint`). Without it the SAM check is skipped
with a reason that says how to get it; cfn-lint comes with the dev dependencies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from flowlink.local.provision import find_template

pytestmark = pytest.mark.integration

TEMPLATE = find_template()
REPO = TEMPLATE.parent
SAM = REPO / ".venv-tools" / "bin" / "sam"


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    return subprocess.run(command, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)


def test_template_passes_sam_validate_lint():
    if not SAM.exists():
        pytest.skip(
            f"SAM CLI NOT INSTALLED at {SAM}: `sam validate --lint` was NOT run. "
            "Run `make tools` (or `make test`, which creates .venv-tools) to enable this check."
        )
    result = _run([str(SAM), "validate", "--lint", "--region", "us-east-1", "--template-file", str(TEMPLATE)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_template_passes_cfn_lint():
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    command = [str(cfn_lint)] if cfn_lint.exists() else [sys.executable, "-m", "cfnlint"]
    result = _run([*command, str(TEMPLATE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_catches_a_broken_template(tmp_path: Path):
    # Guards the test above against a linter that silently accepts anything.
    broken = TEMPLATE.read_text().replace("AttributeType: S }", "AttributeType: X }", 1)
    path = tmp_path / "template.yaml"
    path.write_text(broken)
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = _run([str(cfn_lint), str(path)])
    assert result.returncode != 0
    assert "E3030" in result.stdout

