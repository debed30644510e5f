"""E2E fixtures: the MCP Inspector CLI, installed once, and how to run it with a key.

The stack itself is started by ``flowlink.local.harness`` (``flowlink local up`` on free
ports) or ``flowlink.local.stack.LocalStack`` when a test must restart one component.
``inspector`` installs the Inspector CLI once into ``.venv-tools/node`` (where ``make tools``
puts it too); it is skipped loudly only when npm is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flowlink.local.harness import REPO

INSPECTOR_VERSION = "0.15.0"
INSPECTOR_PREFIX = REPO / ".venv-tools" / "node"
INSPECTOR_BIN = INSPECTOR_PREFIX / "node_modules" / ".bin" / "mcp-inspector"
INSPECTOR_AUTH_PRELOAD = Path(__file__).with_name("inspector_auth.cjs")


@pytest.fixture(scope="session")
def inspector() -> Iterator[Path]:
    """Path of the MCP Inspector CLI, installed once per checkout."""
    if not INSPECTOR_BIN.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("NPM NOT FOUND: the MCP Inspector e2e tests were NOT run (install Node.js 20 and npm)")
        INSPECTOR_PREFIX.mkdir(parents=True, exist_ok=True)
        completed = subprocess.run(
            [npm, "install", "--prefix", str(INSPECTOR_PREFIX), "--no-audit", "--no-fund",
             f"@modelcontextprotocol/inspector@{INSPECTOR_VERSION}"],
            capture_output=True, text=True, timeout=600, check=False,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
    yield INSPECTOR_BIN


@pytest.fixture(scope="session")
def run_inspector():
    """``run_inspector(bin, url, key, *args)``: the Inspector CLI against ``url`` with the key as Bearer.

    Inspector 0.15.0's CLI has no header option, so ``inspector_auth.cjs`` is preloaded into
    its Node processes to add the ``Authorization`` header to every request it makes.
    """
    return _run_inspector


def _run_inspector(inspector_bin: Path, url: str, api_key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "NODE_OPTIONS": f"--require {INSPECTOR_AUTH_PRELOAD}",
        "FLOWLINK_BEARER": api_key,
    }
    return subprocess.run(
        [str(inspector_bin), "--cli", url, "--transport", "http", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
