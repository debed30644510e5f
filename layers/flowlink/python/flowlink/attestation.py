"""Binary attestation (RFC-002 layer 2): measure the code a gateway or relay runs, keep an
org's baseline, and say ATTESTED or TAMPERED with the files that differ.

A **measurement** is ``{"v": 1, "component": "gateway"|"relay", "measured_at", "python",
"files": {"<package>/<path>": sha256-hex, …}, "digest"}`` where ``files`` covers every file
of the component's packages (``flowlink``, ``shield`` and ``functions`` for the gateway —
the Lambda package and layer; ``flowlink``, ``shield`` and ``edge_relay`` for the relay) except
``__pycache__``, plus ``interpreter/python`` for the relay's interpreter binary, and
``digest`` is SHA-256 of the canonical JSON of ``files``. The gateway measures itself once
per process; the relay measures itself at start and reports it in ``hello``.

An org's **baseline** (one per component) is kept in the audit table under the partition
``attestation#<org_id>`` (``seq`` 0), apart from every chain, and each change of it is an
audit event (``attestation.baseline_set``). The REST routes live in
``flowlink.audit.attestation_api`` so the relay, which imports this module to measure
itself, never loads the web stack.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import platform
import re
import sys
import threading
from pathlib import Path
from typing import Any

from flowlink.audit.canonical import canonical_json
from flowlink.audit.chain import utc_now_iso
from flowlink.errors import Conflict, InvalidInput
from flowlink.settings import Settings

logger = logging.getLogger(__name__)

ATTESTED = "ATTESTED"
TAMPERED = "TAMPERED"
COMPONENTS = ("gateway", "relay")
GATEWAY_PACKAGES = ("flowlink", "shield", "functions")
RELAY_PACKAGES = ("flowlink", "shield", "edge_relay")
SKIPPED_DIRECTORIES = frozenset({"__pycache__"})
# A measurement travels in the relay's hello and lives in DynamoDB items (400 KB).
MAX_FILES = 5000
_CHUNK = 1 << 20


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def package_root(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def measure(roots: dict[str, Path], *, component: str, extra_files: dict[str, Path] | None = None) -> dict[str, Any]:
    """Hash every file below each root (named ``<root name>/<relative path>``) and the extras."""
    files: dict[str, str] = {}
    for name, root in sorted(roots.items()):
        for directory, subdirectories, filenames in os.walk(root):
            subdirectories[:] = sorted(d for d in subdirectories if d not in SKIPPED_DIRECTORIES)
            for filename in sorted(filenames):
                path = Path(directory) / filename
                if not path.is_file():
                    continue
                files[f"{name}/{path.relative_to(root).as_posix()}"] = _sha256_file(path)
                if len(files) > MAX_FILES:
                    raise InvalidInput(f"more than {MAX_FILES} files to measure below {root}")
    for name, path in sorted((extra_files or {}).items()):
        files[name] = _sha256_file(path)
    return {
        "v": 1,
        "component": component,
        "measured_at": utc_now_iso(),
        "python": platform.python_version(),
        "files": files,
        "digest": hashlib.sha256(canonical_json(files)).hexdigest(),
    }


def _roots(packages: tuple[str, ...]) -> dict[str, Path]:
    roots = {}
    for name in packages:
        root = package_root(name)
        if root is not None:
            roots[name] = root
    return roots


def measure_relay() -> dict[str, Any]:
    """The relay's measurement: its packages and its interpreter binary (edge_relay calls this)."""
    interpreter = Path(os.path.realpath(sys.executable))
    return measure(_roots(RELAY_PACKAGES), component="relay", extra_files={"interpreter/python": interpreter})


_gateway_lock = threading.Lock()
_gateway_measurement: dict[str, Any] | None = None


def gateway_measurement() -> dict[str, Any]:
    """The gateway's own measurement, taken once per process (call at start to pin it early)."""
    global _gateway_measurement
    with _gateway_lock:
        if _gateway_measurement is None:
            _gateway_measurement = measure(_roots(GATEWAY_PACKAGES), component="gateway")
        return _gateway_measurement


_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
MAX_FILE_NAME_CHARS = 1024


def validate_measurement(measurement: Any) -> dict[str, Any]:
    """A measurement given to the API (a baseline to store, or one to verify), checked and
    with its ``digest`` computed from ``files``; raises InvalidInput naming what is wrong.

    ``files`` must map 1..MAX_FILES relative paths (no leading ``/``, no ``..``) to
    lowercase 64-hex SHA-256 strings.
    """
    if not isinstance(measurement, dict) or not isinstance(measurement.get("files"), dict):
        raise InvalidInput("measurement must be an object with a 'files' map")
    files = measurement["files"]
    if not 1 <= len(files) <= MAX_FILES:
        raise InvalidInput(f"measurement files must hold 1 to {MAX_FILES} entries")
    for name, digest in files.items():
        parts = name.split("/")
        if (
            not name or len(name) > MAX_FILE_NAME_CHARS or name.startswith("/") or "\x00" in name
            or any(part in ("", ".", "..") for part in parts)
        ):
            raise InvalidInput(
                f"measurement files: {name[:80]!r} is not a relative path (e.g. 'edge_relay/daemon.py', "
                f"at most {MAX_FILE_NAME_CHARS} characters)"
            )
        if not isinstance(digest, str) or not _SHA256_HEX.match(digest):
            raise InvalidInput(
                f"measurement files: the value of {name[:80]!r} must be a SHA-256 digest (64 hex characters, "
                "lowercase)"
            )
    return {**measurement, "digest": hashlib.sha256(canonical_json(files)).hexdigest()}


def compare(baseline: dict[str, Any] | None, measurement: dict[str, Any] | None) -> dict[str, Any]:
    """ATTESTED when the file maps are equal, else TAMPERED with changed/added/removed files."""
    if not baseline:
        raise Conflict("no attestation baseline captured yet: POST /api/v1/attestation/policy first")
    if not isinstance(measurement, dict) or not isinstance(measurement.get("files"), dict):
        return {"status": TAMPERED, "reason": "no measurement reported", "changed": [], "added": [], "removed": []}
    expected, actual = baseline["files"], measurement["files"]
    changed = sorted(name for name in expected.keys() & actual.keys() if expected[name] != actual[name])
    added = sorted(actual.keys() - expected.keys())
    removed = sorted(expected.keys() - actual.keys())
    status = ATTESTED if not (changed or added or removed) else TAMPERED
    return {"status": status, "digest": measurement.get("digest"), "baseline_digest": baseline.get("digest"),
            "changed": changed, "added": added, "removed": removed}


# --- baseline storage -------------------------------------------------------------------


def _policy_key(org_id: str) -> dict[str, Any]:
    return {"org_id": {"S": f"attestation#{org_id}"}, "seq": {"N": "0"}}


def load_policy(settings: Settings, org_id: str) -> dict[str, Any]:
    from flowlink import audit

    store = audit.store_for(settings)
    item = store.client.get_item(TableName=store.table, Key=_policy_key(org_id), ConsistentRead=True).get("Item")
    if not item:
        return {}
    try:
        return json.loads(item["policy"]["S"])
    except (KeyError, ValueError):
        logger.warning("attestation policy of org %s is unreadable; treating it as absent", org_id)
        return {}


def save_baseline(settings: Settings, org_id: str, component: str, measurement: dict[str, Any],
                  actor: dict[str, Any] | None) -> dict[str, Any]:
    if component not in COMPONENTS:
        raise InvalidInput(f"component must be one of {', '.join(COMPONENTS)}")
    measurement = validate_measurement(measurement)
    from flowlink import audit

    policy = load_policy(settings, org_id)
    baseline = {"files": measurement["files"], "digest": measurement.get("digest"), "captured_at": utc_now_iso(),
                "python": measurement.get("python")}
    policy[component] = baseline
    store = audit.store_for(settings)
    store.client.put_item(TableName=store.table, Item={**_policy_key(org_id), "policy": {"S": json.dumps(policy)}})
    audit.store_for(settings).append(org_id, "attestation.baseline_set",
                                     {"component": component, "digest": baseline["digest"],
                                      "files": len(baseline["files"])}, actor=actor)
    return baseline


def relay_drift(settings: Settings, org_id: str, attestation: dict[str, Any] | None) -> dict[str, Any] | None:
    """For the relay's hello: the comparison with the org's relay baseline, None without one.
    The caller flags the relay when ``status`` is TAMPERED (and refuses it when the org's
    ``refuse_drifted_relays`` is set)."""
    baseline = load_policy(settings, org_id).get("relay")
    return compare(baseline, attestation) if baseline else None
