"""`flowlink keys` and `flowlink enrollment-token` as real processes against the live gateway.

The org and its admin key come from the bootstrap; the commands find the gateway and the
key through FLOWLINK_API_URL / FLOWLINK_API_KEY, as a user's shell would, and what they
mint or revoke is then checked against the gateway itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

pytestmark = pytest.mark.integration


def flowlink(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowlink.cli", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def org_settings(live_gateway, key: str) -> httpx.Response:
    return httpx.get(live_gateway.base_url + "/api/v1/org/settings", headers={"Authorization": f"Bearer {key}"})


def test_keys_commands_create_list_and_revoke_through_the_gateway(live_gateway, tmp_path):
    org = live_gateway.stack.org("acme")
    env = {**os.environ, "FLOWLINK_API_URL": live_gateway.base_url, "FLOWLINK_API_KEY": org["admin_key"]}

    created = flowlink("keys", "create", "--scope", "approver", "--name", "alice", "--json", env=env)
    assert created.returncode == 0, created.stderr
    approver = json.loads(created.stdout)
    assert approver["scope"] == "approver" and approver["name"] == "alice"
    assert org_settings(live_gateway, approver["key"]).json()["org_id"] == org["org_id"]

    listed = flowlink("keys", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    scopes = {key["key_id"]: key["scope"] for key in json.loads(listed.stdout)["keys"]}
    assert scopes[approver["key_id"]] == "approver"
    assert approver["key"] not in listed.stdout

    revoked = flowlink("keys", "revoke", approver["key_id"], env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert org_settings(live_gateway, approver["key"]).status_code == 401
    assert org_settings(live_gateway, org["admin_key"]).status_code == 200
    (line,) = [line for line in flowlink("keys", "list", env=env).stdout.splitlines() if approver["key_id"] in line]
    assert "revoked" in line and "alice" in line


def test_enrollment_token_command_mints_a_token_that_enrolls_a_relay(live_gateway, make_relay):
    org = live_gateway.stack.org("acme")
    env = {**os.environ, "FLOWLINK_API_URL": live_gateway.base_url, "FLOWLINK_API_KEY": org["admin_key"]}

    done = flowlink("enrollment-token", "web-02", env=env)
    assert done.returncode == 0, done.stderr
    token = next(word for word in done.stdout.split() if word.startswith("flk_enr_"))
    assert f"flowlink-relay enroll --api-url {live_gateway.base_url} --token {token} --name web-02" in done.stdout

    relay = make_relay({"enrollment_token": token}, name="web-02")
    assert relay.enroll()["org_id"] == org["org_id"]


def test_keys_commands_need_an_admin_key(live_gateway):
    org = live_gateway.stack.org("acme")
    env = {**os.environ, "FLOWLINK_API_URL": live_gateway.base_url}

    agent_env = {**env, "FLOWLINK_API_KEY": org["api_key"]}
    as_agent = flowlink("keys", "create", "--scope", "admin", "--name", "escalate", env=agent_env)
    assert as_agent.returncode == 1 and "HTTP 403" in as_agent.stderr
    unknown = flowlink("keys", "list", env={**env, "FLOWLINK_API_KEY": "flk_live_not-a-key"})
    assert unknown.returncode == 1 and "HTTP 401" in unknown.stderr
