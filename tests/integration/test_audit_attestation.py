"""Integration tests of binary attestation (RFC-002 layer 2) through the gateway's REST API:
baseline capture, ATTESTED, then TAMPERED naming the changed relay file."""

from __future__ import annotations

import shutil

import httpx
import pytest
from flowlink import attestation
from flowlink.audit import store_for

pytestmark = pytest.mark.integration


def _enroll(gateway, org) -> str:
    response = httpx.post(gateway.base_url + "/api/v1/relays/enroll",
                          json={"token": org["enrollment_token"], "name": "web-01",
                                "signing_public_key": "A" * 43 + "="})
    response.raise_for_status()
    return response.json()["relay_id"]


def _report_hello(stack, org_id: str, relay_id: str, measurement: dict) -> None:
    """What the relay's hello does: store the measurement it reported."""
    record = stack.store.get_agent(org_id, relay_id)
    stack.store.mark_agent_online(record, "conn-attest", "2026-11-25T09:00:00.000000Z", attestation=measurement)


def test_attestation_relay_attested_then_tampered_after_one_file_changes(live_gateway, tmp_path):
    stack = live_gateway.stack
    org = stack.org("attest")
    relay_id = _enroll(live_gateway, org)
    installed = tmp_path / "edge_relay"
    shutil.copytree(attestation.package_root("edge_relay"), installed,
                    ignore=shutil.ignore_patterns("__pycache__"))
    _report_hello(stack, org["org_id"], relay_id, attestation.measure({"edge_relay": installed}, component="relay"))

    with live_gateway.admin(org) as admin:
        assert admin.post("/api/v1/attestation/verify", json={"component": "relay", "relay_id": relay_id}
                          ).status_code == 409  # no baseline yet
        captured = admin.post("/api/v1/attestation/policy", json={"component": "relay", "relay_id": relay_id})
        assert captured.status_code == 201 and captured.json()["files"] > 5
        verdict = admin.post("/api/v1/attestation/verify", json={"component": "relay", "relay_id": relay_id}).json()
        assert verdict["status"] == "ATTESTED"

        (installed / "daemon.py").write_text((installed / "daemon.py").read_text() + "\n# drifted\n")
        _report_hello(stack, org["org_id"], relay_id,
                      attestation.measure({"edge_relay": installed}, component="relay"))
        verdict = admin.post("/api/v1/attestation/verify", json={"component": "relay", "relay_id": relay_id}).json()
        assert verdict["status"] == "TAMPERED" and verdict["changed"] == ["edge_relay/daemon.py"]
        report = admin.get("/api/v1/attestation/report").json()
        assert [r["status"] for r in report["relays"]] == ["TAMPERED"]
        policy = admin.get("/api/v1/attestation/policy").json()
        assert policy["relay"]["digest"] == captured.json()["digest"] and policy["gateway"] is None

    kinds = [item["kind"]["S"] for item in store_for(stack.settings).iter_items(org["org_id"])]
    assert "attestation.baseline_set" in kinds


def test_attestation_gateway_baseline_and_scopes(live_gateway):
    org = live_gateway.stack.org("attest-gw")
    agent = httpx.Client(base_url=live_gateway.base_url, headers={"Authorization": f"Bearer {org['api_key']}"})
    with agent, live_gateway.admin(org) as admin:
        assert agent.post("/api/v1/attestation/policy", json={"component": "gateway"}).status_code == 403
        assert admin.post("/api/v1/attestation/policy", json={"component": "gateway"}).status_code == 201
        assert agent.post("/api/v1/attestation/verify", json={"component": "gateway"}).json()["status"] == "ATTESTED"
        forged = {"files": {"flowlink/__init__.py": "0" * 64}, "digest": "x"}
        verdict = agent.post("/api/v1/attestation/verify", json={"component": "gateway", "measurement": forged}).json()
        assert verdict["status"] == "TAMPERED" and "flowlink/__init__.py" in verdict["changed"]
        assert admin.post("/api/v1/attestation/policy", json={"component": "moon"}).status_code in (400, 422)
        assert admin.get("/api/v1/attestation/report").json()["gateway"]["status"] == "ATTESTED"


@pytest.mark.parametrize(
    "measurement, reason",
    [
        ({"v": 1, "files": {"a": 1}}, "64 hex"),
        ({"v": 1, "files": {}}, "files"),
        ({"v": 1, "files": {"/etc/passwd": "0" * 64}}, "relative"),
        ({"v": 1, "files": {"../x": "0" * 64}}, "relative"),
        ({"v": 1, "files": {"a": "Z" * 64}}, "64 hex"),
        ({"v": 1}, "files"),
    ],
)
def test_malformed_attestation_measurements_are_refused_and_nothing_is_stored(live_gateway, measurement, reason):
    org = live_gateway.stack.org("attest")
    admin = live_gateway.admin(org)
    stored = admin.post("/api/v1/attestation/policy", json={"component": "relay", "measurement": measurement})
    assert stored.status_code == 400, stored.text
    assert stored.json()["error"] == "invalid_input" and reason in stored.json()["detail"]
    assert admin.get("/api/v1/attestation/policy").json()["relay"] is None
    good = {"v": 1, "files": {"edge_relay/daemon.py": "a" * 64}}
    assert admin.post("/api/v1/attestation/policy", json={"component": "relay", "measurement": good}).status_code == 201
    verified = admin.post("/api/v1/attestation/verify", json={"component": "relay", "measurement": measurement})
    assert verified.status_code == 400 and reason in verified.json()["detail"]


def test_attestation_verify_takes_a_relay_name_like_other_routes(live_gateway):
    org = live_gateway.stack.org("attest-name")
    _enroll(live_gateway, org)  # named web-01
    admin = live_gateway.admin(org)
    good = {"v": 1, "files": {"edge_relay/daemon.py": "a" * 64}}
    assert admin.post("/api/v1/attestation/policy", json={"component": "relay", "measurement": good}).status_code == 201
    # Enrolled but never said hello: no measurement yet, which is a drift, found by name.
    by_name = admin.post("/api/v1/attestation/verify", json={"component": "relay", "relay_id": "web-01"})
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["status"] == "TAMPERED"
    unknown = admin.post("/api/v1/attestation/verify", json={"component": "relay", "relay_id": "nope"})
    assert unknown.status_code == 404
