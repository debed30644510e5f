"""Shield path checks for the gateway's read/list/write tools."""

from __future__ import annotations

import pytest

from shield.model import Context, Decision, HostFacts
from shield.paths import check_path, normalise_path
from shield.policy import load_policy

pytestmark = pytest.mark.unit

DEV = Context(cwd="/home/dev/project", host=HostFacts(home="/home/dev", user="dev"))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("~/.ssh/id_rsa", "/home/dev/.ssh/id_rsa"),
        ("$HOME/.aws/credentials", "/home/dev/.aws/credentials"),
        ("${HOME}/x", "/home/dev/x"),
        ("~", "/home/dev"),
        ("~root/.ssh", "/root/.ssh"),
        ("~bob/notes", "/home/bob/notes"),
        ("src/../../../../etc/shadow", "/etc/shadow"),
        ("./README.md", "/home/dev/project/README.md"),
        ("//etc///./shadow", "/etc/shadow"),
        ("/etc/ssh/../shadow", "/etc/shadow"),
        ("/../../etc/shadow", "/etc/shadow"),
    ],
)
def test_paths_normalise_expands_home_and_collapses_traversal(path, expected):
    assert normalise_path(path, DEV)[0] == expected


def test_paths_relative_without_cwd_resolves_against_home_and_says_so():
    context = Context(host=HostFacts(home="/home/dev"))
    normal, notes = normalise_path("notes.txt", context)
    assert normal == "/home/dev/notes.txt"
    assert notes and "no cwd" in notes[0]
    verdict = check_path("read", ".ssh/id_ed25519", context)
    assert verdict.decision is Decision.DENY
    assert "relative" in verdict.flags


@pytest.mark.parametrize(
    ("operation", "path", "rule_id"),
    [
        ("read", "/etc/shadow", "paths.password_hashes"),
        ("write", "/etc/gshadow", "paths.password_hashes"),
        ("read", "~/.ssh/id_ed25519", "paths.ssh_private_keys"),
        ("read", "/etc/ssh/ssh_host_ed25519_key", "paths.ssh_private_keys"),
        ("write", "~/.ssh/authorized_keys", "paths.ssh_authorized_keys"),
        ("read", "~/.aws/credentials", "paths.cloud_credentials"),
        ("read", "~/.config/gcloud/application_default_credentials.json", "paths.cloud_credentials"),
        ("read", "~/.kube/config", "paths.cloud_credentials"),
        ("read", "/var/run/secrets/kubernetes.io/serviceaccount/token", "paths.cloud_credentials"),
        ("list", "~/.password-store", "paths.stored_passwords"),
        ("read", "~/.mozilla/firefox/abc.default/logins.json", "paths.browser_stores"),
        ("read", "~/.config/google-chrome/Default/Login Data", "paths.browser_stores"),
        ("read", "/etc/letsencrypt/live/example.com/privkey.pem", "paths.tls_private_keys"),
        ("read", "/srv/app/certs/server.key", "paths.tls_private_keys"),
        ("read", "/proc/1/mem", "paths.process_memory"),
        ("read", "/proc/self/environ", "paths.process_memory"),
        ("read", "/dev/mem", "paths.process_memory"),
        ("write", "/dev/sda", "paths.block_devices"),
        ("write", "/dev/nvme0n1p1", "paths.block_devices"),
        ("write", "/boot/vmlinuz", "paths.block_devices"),
        ("write", "/etc/sudoers.d/agent", "paths.account_database"),
        ("write", "/etc/ld.so.preload", "paths.account_database"),
    ],
)
def test_paths_builtin_table_denies_secrets_and_takeover(operation, path, rule_id):
    verdict = check_path(operation, path, DEV)
    assert verdict.decision is Decision.DENY
    assert rule_id in [hit.id for hit in verdict.rules]
    hit = next(hit for hit in verdict.rules if hit.id == rule_id)
    assert hit.attack.startswith("T") and hit.severity == "critical"
    assert verdict.score >= 85
    assert verdict.levels_run == ["paths", "policy"]
    assert verdict.policy_version.startswith("default@")
    assert sum(c.points for c in verdict.contributions) == verdict.score


@pytest.mark.parametrize(
    ("operation", "path", "expected"),
    [
        ("write", "~/.bashrc", Decision.HARD_ASK),
        ("write", "/etc/cron.d/job", Decision.HARD_ASK),
        ("write", "/etc/hosts", Decision.HARD_ASK),
        ("read", "~/.bash_history", Decision.HARD_ASK),
        ("read", "/home/dev/project/.env", Decision.HARD_ASK),
        ("read", "~/.npmrc", Decision.HARD_ASK),
        ("read", "/etc/passwd", Decision.SOFT_ASK),  # default policy, not the table
        ("write", "/var/tmp/cache", Decision.SOFT_ASK),
    ],
)
def test_paths_ask_for_persistence_histories_and_system_files(operation, path, expected):
    assert check_path(operation, path, DEV).decision is expected


@pytest.mark.parametrize(
    ("operation", "path"),
    [
        ("read", "src/app.py"),
        ("write", "src/app.py"),
        ("list", "."),
        ("read", "/etc/hosts"),
        ("read", "~/.ssh/known_hosts"),
        ("read", "/etc/ssl/certs/ca-certificates.crt"),
        ("write", "/tmp/build.log"),
    ],
)
def test_paths_ordinary_files_are_auto(operation, path):
    verdict = check_path(operation, path, DEV)
    assert verdict.decision is Decision.AUTO, verdict.reasons
    assert verdict.score == 0 and verdict.rules == []


def test_paths_traversal_cannot_dodge_the_table():
    for path in ("../../../etc/shadow", "/etc/./shadow", "/tmp/../etc/shadow", "src/../../.ssh/id_rsa"):
        assert check_path("read", path, DEV).decision is Decision.DENY, path


@pytest.mark.parametrize(
    ("operation", "path", "flag"),
    [
        ("read", "", "empty"),
        ("read", "   ", "empty"),
        ("read", "/etc/hosts\x00.txt", "binary"),
        ("read", "/tmp/\udcff", "binary"),
        ("read", "/" + "a" * 5000, "too_large"),
        ("exec", "/bin/sh", "bad_operation"),
        ("read", None, "binary"),
    ],
)
def test_paths_unjudgeable_input_is_denied_without_raising(operation, path, flag):
    verdict = check_path(operation, path, DEV)
    assert verdict.decision is Decision.DENY
    assert flag in verdict.flags
    assert verdict.reasons


def test_paths_org_policy_adds_rules_and_scopes_by_agent():
    policy = load_policy(
        "deny:\n  - Read(/srv/secrets/**)\nscopes:\n  - agents: [intern-*]\n    hard_ask: [Write(/srv/**)]\n",
        source="org.yaml",
    )
    context = Context(policy=policy, agent="intern-7", cwd="/srv/app")
    assert check_path("read", "/srv/secrets/db", context).decision is Decision.DENY
    assert check_path("write", "/srv/app/x", context).decision is Decision.HARD_ASK
    other = Context(policy=policy, agent="senior", cwd="/srv/app")
    assert check_path("write", "/srv/app/x", other).decision is Decision.AUTO
    verdict = check_path("read", "/srv/secrets/db", context)
    assert verdict.policy_version == policy.version
    assert verdict.policy_matches == ["deny Read(/srv/secrets/**) (org.yaml:2)"]


def test_paths_policy_allow_cannot_lower_the_builtin_table():
    policy = load_policy("extends: none\nallow:\n  - Read(/etc/**)\n  - Read(~/**)\n")
    context = Context(policy=policy, host=HostFacts(home="/home/dev"))
    assert check_path("read", "/etc/shadow", context).decision is Decision.DENY
    assert check_path("read", "~/.ssh/id_rsa", context).decision is Decision.DENY
    assert check_path("read", "/etc/hostname", context).decision is Decision.AUTO


def test_paths_policy_thresholds_apply_to_the_table_score():
    # An org that sets deny at 60 turns the table's hard_ask band (score 70) into deny.
    strict = Context(policy=load_policy("thresholds: {soft_ask: 20, hard_ask: 40, deny: 60}"))
    assert check_path("write", "/etc/cron.d/x", strict).decision is Decision.DENY
    # Raising thresholds never lowers the table's own decision.
    lax = Context(policy=load_policy("thresholds: {soft_ask: 100, hard_ask: 100, deny: 100}"))
    assert check_path("read", "/etc/shadow", lax).decision is Decision.DENY
    assert check_path("write", "/etc/cron.d/x", lax).decision is Decision.HARD_ASK


def test_paths_verdict_is_reproducible_and_serialisable():
    first = check_path("read", "~/.aws/credentials", DEV).to_dict()
    second = check_path("read", "~/.aws/credentials", DEV).to_dict()
    assert first == second
    assert first["decision"] == "deny" and first["normalized"] == "read /home/dev/.aws/credentials"


MAC = Context(cwd="/Users/ann/src", host=HostFacts(os="darwin", home="/Users/ann", user="ann"))


@pytest.mark.parametrize(
    ("operation", "path", "expected"),
    [
        ("read", "~/.SSH/ID_RSA", Decision.DENY),  # APFS ignores case: same file as ~/.ssh/id_rsa
        ("read", "~/.aws/Credentials", Decision.DENY),
        ("write", "/private/etc/sudoers", Decision.DENY),  # /private/etc is /etc on macOS
        ("read", "/private/etc/shadow", Decision.DENY),
        ("read", "~/Library/Keychains/login.keychain-db", Decision.DENY),
        ("read", "App.py", Decision.AUTO),
    ],
)
def test_paths_case_insensitive_hosts_fold_case_and_private_prefixes(operation, path, expected):
    assert check_path(operation, path, MAC).decision is expected


def test_paths_case_is_significant_on_linux():
    assert check_path("read", "~/.SSH/ID_RSA", DEV).decision is Decision.AUTO


def test_paths_org_policy_rules_fold_case_on_case_insensitive_hosts():
    policy = load_policy("extends: none\ndeny: ['Read(/Volumes/Secrets/**)']")
    mac = Context(policy=policy, host=HostFacts(os="darwin", home="/Users/ann"))
    assert check_path("read", "/volumes/SECRETS/a.txt", mac).decision is Decision.DENY
