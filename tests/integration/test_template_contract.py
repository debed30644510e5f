"""`template.yaml` against docs/contracts.md and DESIGN §1: the tables and their keys, the
functions and their handlers, the HTTP routes, the WebSocket routes and authorizer, and the
settings every function receives. Pure file reading (no sockets)."""

from __future__ import annotations

import pytest
from flowlink import settings as settings_module
from flowlink.local.cfn_template import Stack, load_template
from flowlink.local.provision import find_template

pytestmark = pytest.mark.unit

TEMPLATE = load_template(find_template())
RESOURCES = TEMPLATE["Resources"]

# docs/contracts.md §3: name -> (hash key, range key or None, {gsi: (hash, range)})
CONTRACT_TABLES = {
    "orgs": (("org_id", "S"), None, {}),
    "api_keys": (("key_hash", "S"), None, {"by_org": ("org_id", "created_at")}),
    "agents": (("relay_id", "S"), None, {"by_org": ("org_id", "name")}),
    "connections": (("connection_id", "S"), None, {}),
    "commands": (("command_id", "S"), None, {"by_agent": ("agent_key", "created_at"), "by_org": ("org_id", "created_at")}),
    "enrollments": (("token_hash", "S"), None, {}),
    "audit": (("org_id", "S"), ("seq", "N"), {}),
    "approvals": (("approval_id", "S"), None, {"by_org": ("org_id", "created_at")}),
    "secrets": (("org_id", "S"), ("secret_key", "S"), {}),
}


def _tables() -> dict[str, dict]:
    stack = Stack(TEMPLATE, stack_name="contract")
    found = {}
    for logical_id in stack.resources_of_type("AWS::DynamoDB::Table"):
        props = stack.properties(logical_id)
        found[props["TableName"].removeprefix("contract-")] = props
    return found


def test_template_tables_match_contracts_and_settings():
    tables = _tables()
    assert set(tables) == set(CONTRACT_TABLES) == set(settings_module.TABLE_NAMES)
    for name, (hash_key, range_key, gsis) in CONTRACT_TABLES.items():
        props = tables[name]
        types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
        keys = {k["KeyType"]: k["AttributeName"] for k in props["KeySchema"]}
        assert (keys["HASH"], types[keys["HASH"]]) == hash_key, name
        assert ((keys["RANGE"], types[keys["RANGE"]]) if "RANGE" in keys else None) == range_key, name
        declared = {
            g["IndexName"]: tuple(k["AttributeName"] for k in g["KeySchema"])
            for g in props.get("GlobalSecondaryIndexes", [])
        }
        assert declared == gsis, name
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_template_audit_table_survives_deletion():
    audit = RESOURCES["AuditTable"]
    assert audit["Properties"]["DeletionProtectionEnabled"] is True
    assert audit["DeletionPolicy"] == "Retain"


def test_template_functions_point_at_handler_folders():
    expected = {
        "GatewayHttpFunction": "functions/gateway_http/",
        "WsAuthorizerFunction": "functions/ws_authorizer/",
        "WsConnectFunction": "functions/ws_connect/",
        "WsMessageFunction": "functions/ws_message/",
        "WsDisconnectFunction": "functions/ws_disconnect/",
        "WitnessPublisherFunction": "functions/witness_publisher/",
    }
    for logical_id, code_uri in expected.items():
        props = RESOURCES[logical_id]["Properties"]
        assert props["CodeUri"] == code_uri
        assert props["Handler"] == "app.handler"


def test_template_http_api_routes_reach_the_gateway():
    events = RESOURCES["GatewayHttpFunction"]["Properties"]["Events"]
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events.values() if e["Type"] == "HttpApi"}
    assert routes == {
        ("ANY", "/mcp"), ("ANY", "/api/{proxy+}"), ("POST", "/telegram/webhook"),
        # / redirects to the dashboard page, whose script and stylesheet live under /dashboard/.
        ("GET", "/"), ("GET", "/dashboard"), ("GET", "/dashboard/{proxy+}"),
    }


def test_template_websocket_connect_route_is_authorized():
    api = RESOURCES["WebSocketApi"]["Properties"]
    assert api["ProtocolType"] == "WEBSOCKET"
    assert api["RouteSelectionExpression"] == "$request.body.action"
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::ApiGatewayV2::Route"}
    assert set(routes) == {"$connect", "$disconnect", "$default"}
    assert routes["$connect"]["AuthorizationType"] == "CUSTOM"
    assert RESOURCES["WsAuthorizer"]["Properties"]["AuthorizerType"] == "REQUEST"
    for key in ("$disconnect", "$default"):
        assert routes[key].get("AuthorizationType", "NONE") == "NONE"


def test_template_functions_get_the_settings_flowlink_reads():
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert variables[settings_module.ENV_ENVIRONMENT] == "aws"
    assert variables[settings_module.ENV_TABLE_PREFIX] == {"Ref": "AWS::StackName"}
    for name in (
        settings_module.ENV_WS_URL,
        settings_module.ENV_WS_MANAGEMENT_URL,
        settings_module.ENV_WITNESS_BUCKET,
    ):
        assert name in variables
    # The private signing key reaches only the functions whose code signs with it.
    signers = {"GatewayHttpFunction", "WsMessageFunction", "ApprovalDispatcherFunction", "WitnessPublisherFunction"}
    assert settings_module.ENV_SIGNING_KEY not in variables
    for name, resource in RESOURCES.items():
        if resource["Type"] == "AWS::Serverless::Function":
            own = resource["Properties"].get("Environment", {}).get("Variables", {})
            assert (settings_module.ENV_SIGNING_KEY in own) == (name in signers), name
    witness_env = RESOURCES["WitnessPublisherFunction"]["Properties"]["Environment"]["Variables"]
    assert settings_module.ENV_WITNESS_HMAC_KEY in witness_env
    # Every variable name the template sets is one flowlink.settings knows (no typos).
    known = {value for key, value in vars(settings_module).items() if key.startswith("ENV_")}
    for name in variables:
        assert name in known or name.startswith("POWERTOOLS_"), name


def test_template_outputs_give_clients_their_urls():
    outputs = TEMPLATE["Outputs"]
    for name in ("HttpApiUrl", "McpUrl", "WebSocketUrl", "WitnessBucketName", "AuditTableName"):
        assert name in outputs


def test_template_secret_keys_are_the_ones_flowlink_local_secret_prints():
    import re

    from flowlink.cli.local_cmd import control_plane_secret
    from flowlink.relay_protocol import private_key_from_pem

    text = find_template().read_text()
    referenced = set(re.findall(r"resolve:secretsmanager:\$\{SecretsId\}:SecretString:(\w+)", text))
    secret = control_plane_secret()
    assert referenced == set(secret)
    private_key_from_pem(secret["signing_key_pem"])  # a usable Ed25519 key, not just text
    assert len(bytes.fromhex(secret["witness_hmac_key"])) == 32


def test_readme_client_configs_are_the_ones_local_up_prints():
    import json
    import re

    from flowlink.local.client_configs import client_configs

    readme = (find_template().parent / "README.md").read_text()
    blocks = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", readme, re.DOTALL)]
    expected = [c.document for c in client_configs("http://127.0.0.1:9080/mcp", "flk_live_…")]
    assert blocks[: len(expected)] == expected


def test_readme_deploy_parameters_are_the_templates():
    import re

    readme = (find_template().parent / "README.md").read_text()
    section = readme.split("### Deploying to AWS", 1)[1].split("\n### ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, re.MULTILINE))
    parameters = TEMPLATE["Parameters"]
    assert set(rows) == set(parameters)
    for name, spec in parameters.items():
        default = str(spec.get("Default", ""))
        assert (default in rows[name]) if default else rows[name].startswith("empty"), (name, rows[name])
