"""The dashboard script's pure helpers (escaping, countdowns, URLs, the request it sends),
run under node's own test runner. No browser; skipped where node is not installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

NODE = shutil.which("node")
TESTS = Path(__file__).with_name("dashboard_helpers.test.cjs")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_dashboard_js_helpers_pass_under_node():
    with resources.as_file(resources.files("flowlink.gateway.dashboard").joinpath("app.js")) as script:
        result = subprocess.run(
            [NODE, "--test", str(TESTS)],
            check=False,  # the assertion below shows node's report on failure
            env={**os.environ, "FLOWLINK_DASHBOARD_JS": str(script)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout
