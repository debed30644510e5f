"""Orchestration of the local stack: emulator, provisioning, gateway, bootstrap, relay.

``LocalStack(config).up()`` is what ``flowlink local up`` runs; its steps are public methods
too (``start_aws``, ``provision``, ``start_gateway``, ``stop_gateway``, ``bootstrap``,
``enroll_relay``, ``start_relay``, ``wait_relay_connected`` ...) so tests and benchmarks can
start components separately, on free ports, and restart one of them (the gateway) while
the others keep running.

Steps of ``up`` (DESIGN §4):
1. refuse at once when a port is taken (PortInUseError names it);
2. start moto on ``aws_port`` unless an external endpoint (LocalStack, AWS) is configured,
   switch Step Functions execution on, *then* provision from ``template.yaml``;
3. generate or reuse the gateway's Ed25519 signing key and a witness HMAC key in the
   state dir (mode 0600);
4. start the gateway (uvicorn, ``flowlink.gateway.local:create_local_app``) and wait for
   ``GET /api/v1/health``;
5. bootstrap the dev org (``flowlink.bootstrap.bootstrap_local``, in a child process so
   this process's environment and cached settings stay untouched) → keys and a token;
6. enroll the relay with the token and run it; wait until its /healthz says connected;
7. run the template's scheduled functions (the witness publisher) on their rate, as
   EventBridge would (``flowlink.local.scheduled``);
8. write ``local.json`` (mode 0600, atomically) with the URLs, keys and pids.

``down()`` stops every child it started (process groups; see ``processes``) and removes
``local.json``. Nothing here prints: the CLI renders what ``up`` returns.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from botocore.exceptions import BotoCoreError, ClientError

from flowlink import settings as settings_module
from flowlink.local.cfn_template import Stack, load_template
from flowlink.local.lambda_bridge import BridgeError, register_functions
from flowlink.local.processes import ComponentFailedError, ManagedProcess, PortInUseError, ensure_port_free
from flowlink.local.provision import (
    ProvisionError,
    ProvisionReport,
    enable_stepfunctions_execution,
    find_template,
    provision,
)
from flowlink.local.scheduled import ScheduledRun, ScheduleRunner, scheduled_functions
from flowlink.relay_protocol import generate_signing_key, private_key_to_pem

logger = logging.getLogger(__name__)

LOCAL_STACK_NAME = "flowlink-local"
LOCAL_INFO_FILE = "local.json"
SIGNING_KEY_FILE = "gateway_signing_key.pem"
WITNESS_KEY_FILE = "witness_hmac.key"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# The logical id issue 4 gives the approval state machine in template.yaml.
APPROVAL_STATE_MACHINE_ID = "ApprovalStateMachine"


class LocalStackError(RuntimeError):
    """The local stack could not start; the message says which component and why."""


@dataclass
class StackConfig:
    """Where and how the local stack runs. Defaults are the documented ports (DESIGN §4)."""

    state_dir: Path = field(default_factory=lambda: Path(".flowlink"))
    host: str = "127.0.0.1"
    gateway_port: int = 9080
    aws_port: int = 4566
    relay_health_port: int = 9081
    # An endpoint that is not ours (LocalStack, AWS): used as is, no moto is started.
    aws_endpoint: str | None = None
    stack_name: str = LOCAL_STACK_NAME
    region: str = "us-east-1"
    relay_name: str | None = None
    template: Path | None = None
    moto_plugins: list[str] = field(default_factory=list)
    startup_timeout: float = 120.0
    # Extra environment for the gateway (e.g. FLOWLINK_EXEC_WAIT_SECONDS in tests).
    gateway_env: dict[str, str] = field(default_factory=dict)
    # Run the template's scheduled functions (the witness publisher) every this many
    # seconds instead of at their rate; None keeps the template's rate, 0 turns them off.
    schedule_interval: float | None = None
    relay_env: dict[str, str] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    @property
    def relay_health_url(self) -> str:
        return f"http://{self.host}:{self.relay_health_port}/healthz"

    @property
    def relay_state_dir(self) -> Path:
        return self.state_dir / "relay"

    @property
    def info_path(self) -> Path:
        return self.state_dir / LOCAL_INFO_FILE


class LocalStack:
    """The running local stack; every child process it starts is stopped by ``down()``."""

    def __init__(self, config: StackConfig):
        self.config = config
        self.config.state_dir = Path(config.state_dir).resolve()
        self.aws: ManagedProcess | None = None
        self.gateway: ManagedProcess | None = None
        self.relay: ManagedProcess | None = None
        self.aws_endpoint: str | None = config.aws_endpoint
        self.provision_report: ProvisionReport | None = None
        self.credentials: dict[str, str] = {}
        self.relay_id: str | None = None
        self.schedules: ScheduleRunner | None = None
        # The secret of the gateway's management API emulation, shared with every process
        # this stack starts that posts to relays (gateway, moto's in-process Lambdas).
        self.management_token = secrets.token_urlsafe(32)

    # ------------------------------------------------------------------ whole stack
    def up(self) -> dict[str, Any]:
        """Start everything and return the contents of ``local.json``.

        Raises PortInUseError before starting anything when a port is taken, and
        LocalStackError (after stopping what it started) when a component fails.
        """
        self.check_ports()
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.config.info_path.unlink(missing_ok=True)
        try:
            self.start_aws()
            self.provision()
            self.start_gateway()
            self.credentials = self.bootstrap()
            self.enroll_relay(self.credentials["enrollment_token"])
            self.start_relay()
            self.wait_relay_connected()
            self.start_schedules()
            info = self.info()
            self.write_info(info)
            return info
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Stop the schedules, the relay, the gateway and the emulator (in that order); idempotent."""
        if self.schedules is not None:
            self.schedules.stop()
            self.schedules = None
        for component in (self.relay, self.gateway, self.aws):
            if component is not None:
                component.stop()
        self.config.info_path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.down()

    def check_ports(self) -> None:
        """Raise PortInUseError naming the first port (and its role) that is taken."""
        wanted = [(self.config.gateway_port, "gateway"), (self.config.relay_health_port, "relay health")]
        if not self.config.aws_endpoint:
            wanted.insert(0, (self.config.aws_port, "AWS emulator"))
        seen: set[int] = set()
        for port, what in wanted:
            if port in seen:
                raise LocalStackError(f"port {port} is given to two components ({what} and another)")
            seen.add(port)
            ensure_port_free(port, what, self.config.host)

    def info(self) -> dict[str, Any]:
        """What ``local.json`` holds (docs/contracts: mcp_url, api_url, api_key, approver_key, aws_endpoint, relay_id)."""
        base = self.config.gateway_url
        return {
            "mcp_url": f"{base}/mcp",
            "api_url": base,
            "api_key": self.credentials.get("api_key"),
            "approver_key": self.credentials.get("approver_key"),
            "admin_key": self.credentials.get("admin_key"),
            "org_id": self.credentials.get("org_id"),
            "aws_endpoint": self.aws_endpoint,
            "relay_id": self.relay_id,
            "relay_name": self.relay_name,
            "relay_health_url": self.config.relay_health_url,
            "ws_url": f"ws://{self.config.host}:{self.config.gateway_port}/ws",
            "stack_name": self.config.stack_name,
            "state_dir": str(self.config.state_dir),
            "pids": {
                "orchestrator": os.getpid(),
                "aws": self.aws.pid if self.aws else None,
                "gateway": self.gateway.pid if self.gateway else None,
                "relay": self.relay.pid if self.relay else None,
            },
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def write_info(self, info: dict[str, Any]) -> Path:
        """Write ``local.json`` atomically with mode 0600 (it holds keys)."""
        path = self.config.info_path
        temporary = path.with_suffix(".json.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(info, handle, indent=2)
            handle.write("\n")
        os.replace(temporary, path)
        return path

    # ------------------------------------------------------------------ AWS emulator
    def start_aws(self) -> str:
        """Start moto (unless an external endpoint is configured) and switch Step Functions
        execution on; returns the endpoint URL."""
        if self.config.aws_endpoint:
            self.aws_endpoint = self.config.aws_endpoint
            logger.info("using external AWS endpoint %s", self.aws_endpoint)
            return self.aws_endpoint
        argv = [sys.executable, "-m", "flowlink.local.moto_server", "--host", self.config.host,
                "--port", str(self.config.aws_port),
                "--lambda-bridge", str(self.template_path()), "--stack-name", self.config.stack_name]
        for plugin in self.config.moto_plugins:
            argv += ["--plugin", plugin]
        self.aws_endpoint = f"http://{self.config.host}:{self.config.aws_port}"
        # The state machine's Lambda tasks run inside the emulator's process (lambda_bridge),
        # so it gets the gateway's settings: tables, this endpoint, the signing key, Telegram.
        self.aws = ManagedProcess("AWS emulator (moto)", argv, env=self.gateway_env(),
                                  log_path=self.config.state_dir / "logs" / "moto.log")
        self.aws.start()
        deadline = time.monotonic() + self.config.startup_timeout
        while True:
            if not self.aws.alive():
                raise LocalStackError(str(self.aws.fail("exited during start-up")))
            try:
                # Switch first, then provision: moto swaps backends on this switch (DESIGN §4).
                enable_stepfunctions_execution(self.aws_endpoint, timeout=2)
                break
            except ProvisionError:
                if time.monotonic() > deadline:
                    raise LocalStackError(str(self.aws.fail("did not answer in time"))) from None
                time.sleep(0.1)
        return self.aws_endpoint

    def template_path(self) -> Path:
        return Path(self.config.template) if self.config.template else find_template()

    def provision(self) -> ProvisionReport:
        """Create the template's tables, buckets, queues and state machines on the endpoint;
        on our own moto, also register the functions state machines call (the bridge runs them)."""
        import boto3

        session = boto3.session.Session(**self._session_credentials(), region_name=self.config.region)
        try:
            self.provision_report = provision(
                self.template_path(),
                stack_name=self.config.stack_name,
                region=self.config.region,
                session=session,
                endpoint_url=self.aws_endpoint,
            )
            called = self.provision_report.state_machine_functions
            if self.aws is not None and called:
                clients = {name: session.client(name, endpoint_url=self.aws_endpoint) for name in ("lambda", "iam")}
                register_functions(clients["lambda"], clients["iam"],
                                   {k: v for k, v in self.provision_report.functions.items() if k in called})
        except (ProvisionError, BridgeError, ClientError, BotoCoreError) as exc:
            raise LocalStackError(f"provisioning {self.aws_endpoint} from template.yaml failed: {exc}") from exc
        return self.provision_report

    # ------------------------------------------------------------------ keys
    def signing_key_path(self) -> Path:
        """The gateway's Ed25519 key in the state dir, generated once (mode 0600) and reused."""
        path = self.config.state_dir / SIGNING_KEY_FILE
        if not path.exists():
            _write_secret(path, private_key_to_pem(generate_signing_key()))
        return path

    def witness_hmac_key(self) -> str:
        path = self.config.state_dir / WITNESS_KEY_FILE
        if not path.exists():
            _write_secret(path, secrets.token_hex(32))
        return path.read_text().strip()

    # ------------------------------------------------------------------ gateway
    def gateway_env(self) -> dict[str, str]:
        """The environment the gateway (and the bootstrap child) run with."""
        if self.aws_endpoint is None:
            raise LocalStackError("the AWS endpoint is not started yet")
        base = self.config.gateway_url
        env = self._aws_child_env()
        env.update({
            settings_module.ENV_ENVIRONMENT: "local",
            settings_module.ENV_TABLE_PREFIX: self.config.stack_name,
            settings_module.ENV_AWS_ENDPOINT: self.aws_endpoint,
            settings_module.ENV_REGION: self.config.region,
            settings_module.ENV_DEFAULT_REGION: self.config.region,
            settings_module.ENV_WS_URL: f"ws://{self.config.host}:{self.config.gateway_port}/ws",
            settings_module.ENV_WS_MANAGEMENT_URL: base,
            settings_module.ENV_API_URL: base,
            settings_module.ENV_SIGNING_KEY_FILE: str(self.signing_key_path()),
            settings_module.ENV_WITNESS_HMAC_KEY: self.witness_hmac_key(),
            settings_module.ENV_LOCAL_MANAGEMENT_TOKEN: self.management_token,
        })
        env.pop(settings_module.ENV_SIGNING_KEY, None)
        report = self.provision_report
        if report is not None:
            if "WitnessBucket" in report.buckets:
                env[settings_module.ENV_WITNESS_BUCKET] = report.buckets["WitnessBucket"]
            if APPROVAL_STATE_MACHINE_ID in report.state_machines:
                env[settings_module.ENV_STATE_MACHINE_ARN] = report.state_machines[APPROVAL_STATE_MACHINE_ID]
        env.update(self.config.gateway_env)
        return env

    def start_gateway(self) -> None:
        """Start uvicorn with the local gateway app and wait until /api/v1/health answers."""
        argv = [
            sys.executable, "-m", "uvicorn", "--factory", "flowlink.gateway.local:create_local_app",
            "--host", self.config.host, "--port", str(self.config.gateway_port),
            "--log-level", "warning",
            # Open relay WebSockets must not hold a restart or Ctrl-C hostage.
            "--timeout-graceful-shutdown", "3",
        ]
        self.gateway = ManagedProcess("gateway", argv, env=self.gateway_env(),
                                      log_path=self.config.state_dir / "logs" / "gateway.log")
        self.gateway.start()
        self._wait_http(self.gateway, f"{self.config.gateway_url}/api/v1/health",
                        lambda status, _body: status == 200)

    # ------------------------------------------------------------------ schedules
    def scheduled_runs(self) -> list[ScheduledRun]:
        """The template's scheduled functions with the period they run at here."""
        if self.config.schedule_interval == 0:
            return []
        stack = Stack(load_template(self.template_path()), stack_name=self.config.stack_name)
        return [ScheduledRun(logical_id, self.config.schedule_interval or period)
                for logical_id, period in sorted(scheduled_functions(stack).items())]

    def start_schedules(self) -> None:
        """Run the scheduled functions (EventBridge's job on AWS) from this process."""
        runs = self.scheduled_runs()
        if not runs:
            return
        self.schedules = ScheduleRunner(runs, template=self.template_path(), stack_name=self.config.stack_name,
                                        env=self.gateway_env(), log_path=self.config.state_dir / "logs" / "schedules.log")
        self.schedules.start()

    def stop_gateway(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()

    def kill_gateway(self) -> None:
        """SIGKILL the gateway's process group (a crash, not a shutdown)."""
        if self.gateway is not None:
            self.gateway.kill()

    def restart_gateway(self) -> None:
        self.stop_gateway()
        self.start_gateway()

    # ------------------------------------------------------------------ bootstrap and relay
    def bootstrap(self, org_name: str = "local") -> dict[str, str]:
        """Mint the dev org's keys and an enrollment token (flowlink.bootstrap.bootstrap_local).

        Runs in a child process with the gateway's environment, so this process's own
        environment (and any settings it cached) never points at the local emulator.
        """
        code = (
            "import json, sys\n"
            "from flowlink.bootstrap import bootstrap_local\n"
            "from flowlink.settings import Settings\n"
            "result = bootstrap_local(Settings.from_env(), org_name=sys.argv[1], relay_name=sys.argv[2])\n"
            "json.dump(result, sys.stdout)\n"
        )
        completed = subprocess.run(
            [sys.executable, "-c", code, org_name, self.relay_name],
            env=self.gateway_env(), capture_output=True, text=True, timeout=self.config.startup_timeout, check=False,
        )
        if completed.returncode != 0:
            raise LocalStackError(f"bootstrapping the local org failed:\n{completed.stderr[-3000:]}")
        try:
            result = json.loads(completed.stdout)
        except json.JSONDecodeError as exc:
            raise LocalStackError(f"bootstrap printed no JSON: {completed.stdout[-500:]!r}") from exc
        missing = {"org_id", "api_key", "approver_key", "admin_key", "enrollment_token"} - set(result)
        if missing:
            raise LocalStackError(f"bootstrap result lacks {', '.join(sorted(missing))}")
        self.credentials = result
        return result

    @property
    def relay_name(self) -> str:
        return self.config.relay_name or socket.gethostname() or "local"

    def relay_env(self) -> dict[str, str]:
        # The relay needs no AWS access, and the commands it runs inherit its environment:
        # keep the emulator's credentials and the gateway's settings out of it.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLOWLINK_"))}
        env.update(self.config.relay_env)
        return env

    def enroll_relay(self, token: str) -> str:
        """Enroll the relay (replacing any earlier identity in its state dir); returns its id."""
        argv = [sys.executable, "-m", "edge_relay", "enroll", "--api-url", self.config.gateway_url,
                "--token", token, "--name", self.relay_name,
                "--state-dir", str(self.config.relay_state_dir), "--force"]
        completed = subprocess.run(
            argv, env=self.relay_env(), capture_output=True, text=True,
            timeout=self.config.startup_timeout, check=False,
        )
        if completed.returncode != 0:
            raise LocalStackError(
                f"relay enrollment failed (exit {completed.returncode}):\n{(completed.stderr or completed.stdout)[-3000:]}"
            )
        identity_path = self.config.relay_state_dir / "identity.json"
        try:
            self.relay_id = json.loads(identity_path.read_text())["relay_id"]
        except (OSError, ValueError, KeyError) as exc:
            raise LocalStackError(f"relay enrolled but {identity_path} has no relay_id: {exc}") from exc
        return self.relay_id

    def start_relay(self) -> None:
        argv = [sys.executable, "-m", "edge_relay", "run", "--state-dir", str(self.config.relay_state_dir),
                "--health-host", self.config.host, "--health-port", str(self.config.relay_health_port)]
        self.relay = ManagedProcess("relay", argv, env=self.relay_env(),
                                    log_path=self.config.state_dir / "logs" / "relay.log")
        self.relay.start()

    def stop_relay(self) -> None:
        if self.relay is not None:
            self.relay.stop()

    def relay_health(self) -> dict[str, Any] | None:
        """The relay's /healthz document, or None when it does not answer."""
        return _get_json(self.config.relay_health_url)

    def wait_relay_connected(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the relay's /healthz reports ``status: connected``."""
        assert self.relay is not None, "start_relay() first"
        return self._wait_http(self.relay, self.config.relay_health_url,
                               lambda status, body: status == 200 and body.get("status") == "connected",
                               timeout=timeout)

    # ------------------------------------------------------------------ helpers
    def _uses_fake_credentials(self) -> bool:
        """Our own moto always; a loopback endpoint (LocalStack) when no credentials are set,
        since emulators accept any but boto3 refuses to sign without some."""
        if not self.config.aws_endpoint:
            return True
        host = urllib.parse.urlsplit(self.config.aws_endpoint).hostname or ""
        loopback = host in ("localhost", "127.0.0.1", "::1") or host.endswith(".localhost.localstack.cloud")
        return loopback and not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"))

    def _aws_child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self._uses_fake_credentials():
            # No developer profile or real key may reach an emulator by accident.
            env.update(FAKE_CREDENTIALS)
            env.pop("AWS_PROFILE", None)
        env.setdefault("AWS_REGION", self.config.region)
        env.setdefault("AWS_DEFAULT_REGION", self.config.region)
        return env

    def _session_credentials(self) -> dict[str, str]:
        if not self._uses_fake_credentials():
            return {}
        return {
            "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "aws_session_token": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        }

    def _wait_http(self, component: ManagedProcess, url: str, ready, timeout: float | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + (timeout or self.config.startup_timeout)
        last: Any = None
        while time.monotonic() < deadline:
            if not component.alive():
                raise LocalStackError(str(component.fail("exited during start-up")))
            status, body = _get(url)
            last = (status, body)
            if status is not None and ready(status, body if isinstance(body, dict) else {}):
                return body if isinstance(body, dict) else {}
            time.sleep(0.2)
        raise LocalStackError(str(component.fail(f"was not ready at {url} in time (last answer {last!r})")))


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _get(url: str, timeout: float = 2.0) -> tuple[int | None, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return None, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def _get_json(url: str) -> dict[str, Any] | None:
    status, body = _get(url)
    return body if status == 200 and isinstance(body, dict) else None


def read_local_info(state_dir: str | Path = ".flowlink") -> dict[str, Any] | None:
    """The ``local.json`` of a running stack, or None when there is none."""
    path = Path(state_dir) / LOCAL_INFO_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def probe_status(info: dict[str, Any]) -> dict[str, str]:
    """Ask each component of a running stack whether it answers: component → state."""
    gateway = _get_json(info["api_url"].rstrip("/") + "/api/v1/health")
    relay = _get_json(info["relay_health_url"]) if info.get("relay_health_url") else None
    status, _ = _get(info["aws_endpoint"]) if info.get("aws_endpoint") else (None, None)
    return {
        "aws": "up" if status is not None else "down",
        "gateway": "up" if gateway else "down",
        "relay": (relay or {}).get("status", "down"),
    }


__all__ = [
    "ComponentFailedError",
    "LocalStack",
    "LocalStackError",
    "PortInUseError",
    "StackConfig",
    "probe_status",
    "read_local_info",
]
