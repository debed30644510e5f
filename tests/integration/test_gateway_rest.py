"""REST surface of the gateway against a live uvicorn server and a moto server over HTTP:
API-key authentication, key management, relay enrollment and org isolation."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_gateway_health_is_public(live_gateway):
    response = httpx.get(live_gateway.base_url + "/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer flk_live_not-a-real-key"},
        {"x-api-key": "garbage"},
        {"Authorization": "Basic abc"},
    ],
)
def test_gateway_rest_refuses_missing_or_bad_keys_with_401(live_gateway, headers):
    live_gateway.stack.org("acme")
    response = httpx.get(live_gateway.base_url + "/api/v1/agents", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="flowlink"'
    body = response.json()
    assert body["error"] == "unauthorized" and body["detail"]


def test_gateway_accepts_bearer_and_x_api_key(live_gateway):
    org = live_gateway.stack.org("acme")
    for headers in ({"Authorization": f"Bearer {org['api_key']}"}, {"x-api-key": org["api_key"]}):
        response = httpx.get(live_gateway.base_url + "/api/v1/agents", headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"agents": []}


def test_gateway_key_management_needs_admin_and_revocation_takes_effect(live_gateway):
    org = live_gateway.stack.org("acme")
    base = live_gateway.base_url
    as_agent = httpx.post(
        base + "/api/v1/keys", json={"scope": "agent", "name": "ci"}, headers={"x-api-key": org["api_key"]}
    )
    assert as_agent.status_code == 403 and as_agent.json()["error"] == "forbidden"

    with live_gateway.admin(org) as admin:
        created = admin.post("/api/v1/keys", json={"scope": "agent", "name": "ci"})
        assert created.status_code == 201, created.text
        new_key = created.json()
        assert new_key["key"].startswith("flk_live_") and new_key["prefix"] == new_key["key"][:12]
        listing = admin.get("/api/v1/keys").json()["keys"]
        assert new_key["key_id"] in {k["key_id"] for k in listing}
        assert all("key" not in k and "key_hash" not in k for k in listing)

        assert httpx.get(base + "/api/v1/agents", headers={"x-api-key": new_key["key"]}).status_code == 200
        revoked = admin.delete(f"/api/v1/keys/{new_key['key_id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        after = httpx.get(base + "/api/v1/agents", headers={"x-api-key": new_key["key"]})
        assert after.status_code == 401 and after.json()["detail"] == "API key revoked"

        bad_scope = admin.post("/api/v1/keys", json={"scope": "root", "name": "x"})
        assert bad_scope.status_code == 400 and "scope" in bad_scope.json()["detail"]
        missing = admin.post("/api/v1/keys", json={"scope": "agent"})
        assert missing.status_code == 400 and "name" in missing.json()["detail"]
        malformed = admin.post(
            "/api/v1/keys", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 400 and malformed.json()["error"] == "invalid_input"


def test_gateway_keys_of_another_org_cannot_be_revoked(live_gateway):
    acme, globex = live_gateway.stack.org("acme"), live_gateway.stack.org("globex")
    with live_gateway.admin(acme) as acme_admin, live_gateway.admin(globex) as globex_admin:
        key_id = acme_admin.post("/api/v1/keys", json={"scope": "agent", "name": "a"}).json()["key_id"]
        assert globex_admin.delete(f"/api/v1/keys/{key_id}").status_code == 404
        assert key_id not in {k["key_id"] for k in globex_admin.get("/api/v1/keys").json()["keys"]}


def test_gateway_enrollment_token_is_one_time(live_gateway):
    org = live_gateway.stack.org("acme")
    with live_gateway.admin(org) as admin:
        token = admin.post("/api/v1/agents/enrollment-tokens", json={"name": "web-01"})
        assert token.status_code == 201, token.text
        assert token.json()["token"].startswith("flk_enr_") and token.json()["expires_at"].endswith("Z")
    body = {
        "token": token.json()["token"],
        "hostname": "web-01.example",
        "facts": {},
        "signing_public_key": "A" * 43 + "=",
        "box_public_key": "B" * 43 + "=",
    }
    first = httpx.post(live_gateway.base_url + "/api/v1/relays/enroll", json=body)
    assert first.status_code == 201, first.text
    identity = first.json()
    assert identity["relay_id"].startswith("rly_") and identity["relay_credential"].startswith("flk_rly_")
    assert identity["org_id"] == org["org_id"] and identity["ws_url"] == live_gateway.ws_url
    assert "BEGIN PUBLIC KEY" in identity["gateway_public_key"]
    second = httpx.post(live_gateway.base_url + "/api/v1/relays/enroll", json=body)
    assert second.status_code == 401 and second.json()["error"] == "enrollment_token_invalid"


def test_gateway_enrollment_rejects_bad_input_without_consuming_the_token(live_gateway):
    org = live_gateway.stack.org("acme")
    url = live_gateway.base_url + "/api/v1/relays/enroll"
    bad_key = httpx.post(url, json={"token": org["enrollment_token"], "signing_public_key": "not base64!"})
    assert bad_key.status_code == 400 and "signing_public_key" in bad_key.json()["detail"]
    good = httpx.post(url, json={"token": org["enrollment_token"], "signing_public_key": "A" * 43 + "="})
    assert good.status_code == 201, good.text
    assert (
        httpx.post(url, json={"token": "flk_enr_unknown", "signing_public_key": "A" * 43 + "="}).status_code
        == 401
    )


def test_gateway_enrollment_tokens_need_an_admin_key(live_gateway):
    org = live_gateway.stack.org("acme")
    response = httpx.post(
        live_gateway.base_url + "/api/v1/agents/enrollment-tokens",
        json={"name": "web-01"},
        headers={"x-api-key": org["approver_key"]},
    )
    assert response.status_code == 403


def test_gateway_agents_are_scoped_to_the_org(live_gateway):
    acme, globex = live_gateway.stack.org("acme"), live_gateway.stack.org("globex")
    url = live_gateway.base_url + "/api/v1/relays/enroll"
    assert (
        httpx.post(
            url,
            json={
                "token": acme["enrollment_token"],
                "name": "acme-web",
                "signing_public_key": "A" * 43 + "=",
            },
        ).status_code
        == 201
    )
    acme_agents = httpx.get(
        live_gateway.base_url + "/api/v1/agents", headers={"x-api-key": acme["api_key"]}
    ).json()
    globex_agents = httpx.get(
        live_gateway.base_url + "/api/v1/agents", headers={"x-api-key": globex["api_key"]}
    ).json()
    assert [a["name"] for a in acme_agents["agents"]] == ["acme-web"]
    assert globex_agents["agents"] == []
    assert "credential_hash" not in acme_agents["agents"][0]


def test_gateway_body_over_the_limit_gets_413(live_gateway):
    org = live_gateway.stack.org("acme")
    limit = live_gateway.stack.settings.max_body_bytes
    with live_gateway.admin(org) as admin:
        response = admin.post(
            "/api/v1/keys", content=b"x" * (limit + 1), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"


def test_gateway_enrollment_token_enrolls_exactly_one_relay_under_concurrency(live_gateway):
    from concurrent.futures import ThreadPoolExecutor

    org = live_gateway.stack.org("acme")
    url = live_gateway.base_url + "/api/v1/relays/enroll"
    body = {"token": org["enrollment_token"], "name": "race", "signing_public_key": "A" * 43 + "="}
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(lambda _: httpx.post(url, json=body, timeout=60).status_code, range(4)))
    assert statuses == [201, 401, 401, 401]
    assert len(live_gateway.stack.store.list_agents(org["org_id"])) == 1


def test_gateway_expired_enrollment_token_is_refused(live_gateway):
    from flowlink.auth import AuthContext
    from flowlink.relays import create_enrollment_token

    org = live_gateway.stack.org("acme")
    admin = AuthContext(org_id=org["org_id"], key_id="key_test", scope="admin", name="test")
    expired = create_enrollment_token(live_gateway.stack.store, admin, "late-01", ttl_seconds=-1)
    response = httpx.post(
        live_gateway.base_url + "/api/v1/relays/enroll",
        json={"token": expired["token"], "signing_public_key": "A" * 43 + "="},
    )
    assert response.status_code == 401 and response.json()["error"] == "enrollment_token_invalid"
    assert live_gateway.stack.store.list_agents(org["org_id"]) == []


def _stored_commands(store, org_id: str, name: str, commands: list[str]) -> str:
    """A relay of ``org_id`` with ``commands`` stored oldest first, as the exec path stores them."""
    from flowlink import relay_protocol
    from flowlink.storage import utc_now_iso

    relay_id = "rly_" + relay_protocol.new_command_id()[-10:]
    store.put_agent(relay_id=relay_id, org_id=org_id, name=name, credential_hash="x", enrolled_at=utc_now_iso(),
                    status="offline", hostname=name + ".internal")
    for command in commands:
        store.create_command(
            command_id=relay_protocol.new_command_id(), org_id=org_id, relay_id=relay_id,
            agent_key=f"{org_id}#{relay_id}", agent_name=name, op="exec", command=command, timeout=30,
            created_at=utc_now_iso(), status="completed", exit_code=0,
            gateway_verdict={"decision": "auto", "score": 0, "reasons": []}, decision="auto",
        )
    return relay_id


def test_gateway_agent_command_history_pages_newest_first_within_the_org(live_gateway):
    stack = live_gateway.stack
    acme, globex = stack.org("acme"), stack.org("globex")
    relay_id = _stored_commands(stack.store, acme["org_id"], "web-01", ["echo one", "echo two", "echo three"])
    approver = {"Authorization": f"Bearer {acme['approver_key']}"}
    url = f"{live_gateway.base_url}/api/v1/agents/{relay_id}/commands"

    first = httpx.get(url, params={"limit": 2}, headers=approver)
    assert first.status_code == 200, first.text
    assert [c["command"] for c in first.json()["commands"]] == ["echo three", "echo two"]
    assert first.json()["agent"]["relay_id"] == relay_id and first.json()["next_page_token"]
    second = httpx.get(url, params={"limit": 2, "page_token": first.json()["next_page_token"]}, headers=approver)
    assert [c["command"] for c in second.json()["commands"]] == ["echo one"]
    by_name = httpx.get(f"{live_gateway.base_url}/api/v1/agents/web-01/commands", headers=approver)
    assert len(by_name.json()["commands"]) == 3

    other_org = httpx.get(url, headers={"Authorization": f"Bearer {globex['approver_key']}"})
    assert other_org.status_code == 404 and other_org.json()["error"] == "agent_not_found"
    assert httpx.get(url, params={"limit": 0}, headers=approver).status_code == 400
    assert httpx.get(url, params={"limit": "many"}, headers=approver).status_code == 400
    assert httpx.get(url).status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "status", "error", "detail"),
    [
        ("GET", "/api/v1/nope", 404, "not_found", "no route GET /api/v1/nope"),
        ("GET", "/nothing-here", 404, "not_found", "no route GET /nothing-here"),
        ("DELETE", "/api/v1/health", 405, "method_not_allowed", "/api/v1/health does not accept DELETE (allowed: GET)"),
        ("PUT", "/api/v1/org/settings", 405, "method_not_allowed", "/api/v1/org/settings does not accept PUT"),
    ],
)
def test_gateway_unknown_routes_and_methods_answer_like_every_other_error(
    live_gateway, method, path, status, error, detail
):
    response = httpx.request(method, live_gateway.base_url + path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == error and body["detail"].startswith(detail), body
    if status == 405:
        assert response.headers["allow"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "text/json"])
def test_gateway_rest_bodies_must_be_sent_as_json(live_gateway, content_type):
    org = live_gateway.stack.org("acme")
    with live_gateway.admin(org) as admin:
        for method, path in (("PATCH", "/api/v1/org/settings"), ("POST", "/api/v1/keys"),
                             ("POST", "/api/v1/approvals/apr_0123456789")):
            response = admin.request(method, path, content=b'{"approvals_required": 2}',
                                     headers={"content-type": content_type})
            assert response.status_code == 415, (path, response.text)
            body = response.json()
            assert body["error"] == "unsupported_media_type" and "application/json" in body["detail"]
        assert admin.get("/api/v1/org/settings").json()["approvals_required"] == 1
        charset = admin.patch("/api/v1/org/settings", content=b'{"approvals_required": 2}',
                              headers={"content-type": "application/json; charset=utf-8"})
        assert charset.status_code == 200 and charset.json()["approvals_required"] == 2


def test_gateway_approvals_refuse_a_malformed_page_token_and_unknown_fields(live_gateway):
    org = live_gateway.stack.org("acme")
    with live_gateway.admin(org) as admin:
        for token in ("garbage", "eyJhIjoxfQ", "x" * 600):
            response = admin.get("/api/v1/approvals", params={"page_token": token})
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "invalid_input" and "page_token" in response.json()["detail"]
        decided = admin.post("/api/v1/approvals/apr_0123456789", json={"decision": "approve", "bogus": 1})
        assert decided.status_code == 400, decided.text
        assert decided.json()["error"] == "invalid_input" and "bogus" in decided.json()["detail"]


def test_gateway_openapi_document_is_served_only_locally(gateway_stack):
    from dataclasses import replace

    from fastapi.testclient import TestClient
    from flowlink.gateway import create_app

    local = TestClient(create_app(gateway_stack.settings))
    assert local.get("/openapi.json").status_code == 200
    assert local.get("/docs").status_code == 404
    deployed = TestClient(create_app(replace(gateway_stack.settings, environment="aws")))
    for path in ("/openapi.json", "/docs", "/redoc"):
        response = deployed.get(path)
        assert response.status_code == 404 and response.json()["error"] == "not_found"
