"""`flowlink audit integrity|publish|export --org` read the audit table directly: AWS
problems (no credentials, a wrong table prefix) end in one clear line and exit code 2,
never a traceback, and an org without events is pointed out (a likely typo)."""

from __future__ import annotations

import os
import subprocess

import pytest
from flowlink.local.harness import FLOWLINK

pytestmark = pytest.mark.integration


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FLOWLINK), "audit", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture
def cli_env(gateway_stack) -> dict[str, str]:
    return dict(os.environ)


@pytest.mark.parametrize("argv", [
    ("integrity", "--org", "org_x"),
    ("publish", "--org", "org_x"),
    ("export", "--org", "org_x", "--out", "-"),
])
def test_audit_direct_paths_without_credentials_say_so(cli_env, argv):
    env = {k: v for k, v in cli_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                         "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")}
    env.update({"FLOWLINK_WITNESS_BUCKET": "witness", "FLOWLINK_WITNESS_HMAC_KEY": "00" * 32})
    completed = _run(*argv, env=env)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr
    assert "no AWS credentials" in completed.stderr


def test_audit_integrity_with_a_wrong_table_prefix_names_the_table(cli_env):
    env = {**cli_env, "FLOWLINK_TABLE_PREFIX": "no-such-stack"}
    completed = _run("integrity", "--org", "org_x", env=env)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr
    assert "'no-such-stack-audit' does not exist" in completed.stderr and "FLOWLINK_TABLE_PREFIX" in completed.stderr


def test_audit_integrity_of_an_org_without_events_is_intact_and_pointed_out(cli_env):
    completed = _run("integrity", "--org", "org_unknown", env=cli_env)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert '"length": 0' in completed.stdout
    assert "org 'org_unknown' has no audit events" in completed.stderr
