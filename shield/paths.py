"""Shield checks for the gateway's file tools (read, list, write): is this path sensitive?

``check_path(operation, path, context)`` normalises the path lexically (``~``,
``$HOME``, ``..``, ``//``, relative to ``context.cwd``), looks it up in a built-in table
of sensitive locations (password hashes, SSH and TLS private keys, cloud credentials,
browser and keyring stores, process and kernel memory, boot and disk devices) and in
the context's policy (``Policy.evaluate_path``), and returns a ``Verdict``.

The built-in table is a floor an org policy cannot lower: a policy may add deny/ask
path rules, and its ``allow`` rules only decide paths nothing else flags.

Pure and lexical: nothing here touches the filesystem, so symlinks are NOT resolved.
The relay, which does have the filesystem, must resolve the real path and check it
again before it opens anything. Never raises on input: a path that cannot be judged
(empty, NUL bytes, unknown operation) is denied with a reason.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from shield.model import Context, Contribution, Decision, RuleHit, Verdict
from shield.policy import PATH_OPERATIONS, Policy, compile_path_glob, default_policy, literal_needle
from shield.version import ENGINE_VERSION

__all__ = ["SENSITIVE_PATHS", "SensitivePath", "check_path", "normalise_path"]

LEVELS_RUN = ["paths", "policy"]
MAX_PATH_LENGTH = 4096  # PATH_MAX on Linux; longer is not a real path

# Scores for the table's decisions: they sit inside the default thresholds' bands
# (soft_ask 30, hard_ask 60, deny 85) so score and decision tell the same story.
_SCORE = {Decision.DENY: 95, Decision.HARD_ASK: 70, Decision.SOFT_ASK: 40}
_SEVERITY = {Decision.DENY: "critical", Decision.HARD_ASK: "high", Decision.SOFT_ASK: "medium"}


@dataclass(frozen=True)
class SensitivePath:
    """One built-in entry: which operations on which paths are how dangerous, and why."""

    id: str
    globs: tuple[str, ...]
    operations: tuple[str, ...]
    decision: Decision
    attack: str
    category: str
    explanation: str


_R, _L, _W = "read", "list", "write"

SENSITIVE_PATHS: tuple[SensitivePath, ...] = (
    SensitivePath(
        "paths.password_hashes",
        (
            "/etc/shadow",
            "/etc/shadow-",
            "/etc/gshadow",
            "/etc/gshadow-",
            "/etc/security/opasswd",
            "/etc/master.passwd",
            "/etc/spwd.db",
        ),
        (_R, _W),
        Decision.DENY,
        "T1003.008",
        "credential_access",
        "password hashes: reading enables offline cracking, writing takes over accounts",
    ),
    SensitivePath(
        "paths.ssh_private_keys",
        (
            "~/.ssh/id_*",
            "~/.ssh/*_rsa",
            "~/.ssh/*_ed25519",
            "~/.ssh/*_ecdsa",
            "~/.ssh/*_dsa",
            "/etc/ssh/ssh_host_*_key",
        ),
        (_R,),
        Decision.DENY,
        "T1552.004",
        "credential_access",
        "SSH private key: whoever reads it can log in as this user or impersonate this host",
    ),
    SensitivePath(
        "paths.ssh_authorized_keys",
        (
            "~/.ssh/authorized_keys",
            "~/.ssh/authorized_keys2",
            "/etc/ssh/sshd_config",
            "/etc/ssh/sshd_config.d/**",
        ),
        (_W,),
        Decision.DENY,
        "T1098.004",
        "persistence",
        "writing SSH authorized keys or sshd config grants persistent remote access",
    ),
    SensitivePath(
        "paths.cloud_credentials",
        (
            "~/.aws/credentials",
            "~/.aws/sso/cache/**",
            "~/.aws/cli/cache/**",
            "~/.config/gcloud/**",
            "~/.azure/**",
            "~/.oci/**",
            "~/.kube/config",
            "~/.docker/config.json",
            "~/.terraform.d/credentials.tfrc.json",
            "~/.vault-token",
            "~/.config/doctl/**",
            "~/.config/hcloud/**",
            "/var/run/secrets/**",
            "/run/secrets/**",
        ),
        (_R,),
        Decision.DENY,
        "T1552.001",
        "credential_access",
        "cloud, cluster or secret-store credentials",
    ),
    SensitivePath(
        "paths.stored_passwords",
        (
            "~/.netrc",
            "~/.pgpass",
            "~/.my.cnf",
            "~/.git-credentials",
            "~/.password-store/**",
            "~/.gnupg/**",
            "~/.local/share/keyrings/**",
            "~/Library/Keychains/**",
            "/etc/krb5.keytab",
            "/tmp/krb5cc_*",
        ),
        (_R, _L),
        Decision.DENY,
        "T1555",
        "credential_access",
        "stored passwords, keyrings or Kerberos tickets",
    ),
    SensitivePath(
        "paths.browser_stores",
        (
            "~/.mozilla/firefox/**/logins.json",
            "~/.mozilla/firefox/**/key4.db",
            "~/.mozilla/firefox/**/cookies.sqlite",
            "~/.config/google-chrome/**/Login Data",
            "~/.config/google-chrome/**/Cookies",
            "~/.config/chromium/**/Login Data",
            "~/.config/chromium/**/Cookies",
            "~/.config/BraveSoftware/**/Login Data",
            "~/.config/BraveSoftware/**/Cookies",
            "~/Library/Application Support/Google/Chrome/**/Login Data",
            "~/Library/Application Support/Google/Chrome/**/Cookies",
            "~/Library/Application Support/Firefox/**/logins.json",
            "~/Library/Application Support/Firefox/**/key4.db",
            "~/Library/Cookies/**",
        ),
        (_R,),
        Decision.DENY,
        "T1555.003",
        "credential_access",
        "browser password or cookie store",
    ),
    SensitivePath(
        "paths.tls_private_keys",
        (
            "**/*.key",
            "**/*privkey*.pem",
            "**/*private*.pem",
            "**/*-key.pem",
            "**/*_key.pem",
            "/etc/ssl/private/**",
            "/etc/pki/tls/private/**",
            "/etc/letsencrypt/archive/**",
            "/etc/letsencrypt/live/**/privkey*.pem",
            "**/*.p12",
            "**/*.pfx",
            "**/*.jks",
            "**/*.keystore",
        ),
        (_R,),
        Decision.DENY,
        "T1552.004",
        "credential_access",
        "TLS/code-signing private key or keystore",
    ),
    SensitivePath(
        "paths.process_memory",
        (
            "/proc/*/mem",
            "/proc/*/environ",
            "/proc/*/maps",
            "/proc/kcore",
            "/proc/kallsyms",
            "/dev/mem",
            "/dev/kmem",
            "/dev/port",
            "/sys/firmware/efi/efivars/**",
        ),
        (_R, _W),
        Decision.DENY,
        "T1003.007",
        "credential_access",
        "process or kernel memory: exposes secrets of every running program",
    ),
    SensitivePath(
        "paths.block_devices",
        (
            "/dev/sd*",
            "/dev/hd*",
            "/dev/nvme*",
            "/dev/vd*",
            "/dev/xvd*",
            "/dev/mmcblk*",
            "/dev/md*",
            "/dev/dm-*",
            "/dev/mapper/**",
            "/dev/disk/**",
            "/boot/**",
            "/proc/sysrq-trigger",
        ),
        (_W,),
        Decision.DENY,
        "T1561.002",
        "destruction",
        "writing a disk device, the boot partition or sysrq destroys or crashes the host",
    ),
    SensitivePath(
        "paths.account_database",
        (
            "/etc/passwd",
            "/etc/group",
            "/etc/sudoers",
            "/etc/sudoers.d/**",
            "/etc/pam.d/**",
            "/etc/security/**",
            "/etc/ld.so.preload",
        ),
        (_W,),
        Decision.DENY,
        "T1548.003",
        "privilege_escalation",
        "accounts, sudo rules, PAM or preload: writing them escalates privileges",
    ),
    SensitivePath(
        "paths.persistence",
        (
            "/etc/cron*/**",
            "/etc/crontab",
            "/var/spool/cron/**",
            "/etc/systemd/**",
            "/lib/systemd/**",
            "/usr/lib/systemd/**",
            "/etc/init.d/**",
            "/etc/rc.local",
            "/etc/profile",
            "/etc/profile.d/**",
            "/etc/bash.bashrc",
            "~/.bashrc",
            "~/.bash_profile",
            "~/.bash_login",
            "~/.profile",
            "~/.zshrc",
            "~/.zprofile",
            "~/.config/autostart/**",
            "~/.config/systemd/**",
            "~/Library/LaunchAgents/**",
            "/Library/LaunchDaemons/**",
        ),
        (_W,),
        Decision.HARD_ASK,
        "T1053",
        "persistence",
        "startup files, cron or services: a write here runs code later, unattended",
    ),
    SensitivePath(
        "paths.shell_history",
        (
            "~/.bash_history",
            "~/.zsh_history",
            "~/.python_history",
            "~/.psql_history",
            "~/.mysql_history",
            "~/.rediscli_history",
        ),
        (_R,),
        Decision.HARD_ASK,
        "T1552.003",
        "credential_access",
        "shell and client histories often contain typed passwords and tokens",
    ),
    SensitivePath(
        "paths.package_tokens",
        (
            "~/.npmrc",
            "~/.pypirc",
            "~/.gem/credentials",
            "~/.cargo/credentials",
            "~/.cargo/credentials.toml",
            "~/.config/gh/hosts.yml",
            "~/.m2/settings.xml",
            "~/.gradle/gradle.properties",
            "**/.env",
            "**/.env.*",
        ),
        (_R,),
        Decision.HARD_ASK,
        "T1552.001",
        "credential_access",
        "file that usually holds registry or API tokens",
    ),
    SensitivePath(
        "paths.system_binaries",
        ("/bin/**", "/sbin/**", "/usr/**", "/lib/**", "/lib64/**", "/etc/**"),
        (_W,),
        Decision.HARD_ASK,
        "T1554",
        "tampering",
        "system binaries, libraries or configuration",
    ),
)

# Per operation: (literal needle, entry, compiled glob). The needle is an `in` test that
# rejects most paths before any regex runs.
_COMPILED: dict[str, tuple[tuple[str, SensitivePath, re.Pattern[str]], ...]] = {
    operation: tuple(
        (literal_needle(glob), entry, compile_path_glob(glob))
        for entry in SENSITIVE_PATHS
        if operation in entry.operations
        for glob in entry.globs
    )
    for operation in PATH_OPERATIONS
}
# The same table for hosts whose filesystems ignore case: lower-cased needles, folded globs.
_COMPILED_FOLDED: dict[str, tuple[tuple[str, SensitivePath, re.Pattern[str]], ...]] = {
    operation: tuple(
        (needle.lower(), entry, re.compile(glob.pattern, re.DOTALL | re.IGNORECASE))
        for needle, entry, glob in entries
    )
    for operation, entries in _COMPILED.items()
}
_CASE_INSENSITIVE_OS = frozenset({"darwin", "macos", "mac", "osx", "windows", "win32"})
# macOS keeps /etc, /var and /tmp under /private; both spellings reach the same file.
_MACOS_PRIVATE = re.compile(r"^/private(?=/(etc|var|tmp)(/|$))")
_HOME_VARIABLE = re.compile(r"^(\$HOME|\$\{HOME\})(?=/|$)")
_TILDE_USER = re.compile(r"^~([A-Za-z_][A-Za-z0-9_.-]*)(?=/|$)")


def normalise_path(path: str, context: Context) -> tuple[str, list[str]]:
    """Lexically normalise ``path`` for ``context``; returns (absolute path, notes).

    ``~``/``$HOME`` become ``context.host.home``, ``~user`` becomes ``/home/user``
    (``/root`` for root), a relative path is joined to ``context.cwd`` (else the
    project root, else home), and ``.``/``..``/``//`` collapse.
    """
    notes: list[str] = []
    home = context.host.home or "/root"
    expanded = _HOME_VARIABLE.sub(lambda _: home, path)
    if expanded == "~" or expanded.startswith("~/"):
        expanded = home + expanded[1:]
    else:
        user = _TILDE_USER.match(expanded)
        if user:
            name = user.group(1)
            expanded = ("/root" if name == "root" else f"/home/{name}") + expanded[user.end() :]
    if not expanded.startswith("/"):
        base = context.cwd or context.project_root or home
        if not (context.cwd or context.project_root):
            notes.append(f"relative path resolved against {base} (no cwd given)")
        expanded = posixpath.join(base, expanded)
    normal = posixpath.normpath(expanded)
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    return normal, notes


def _refuse(operation: str, path: object, reason: str, flag: str, policy_version: str) -> Verdict:
    return Verdict(
        decision=Decision.DENY,
        score=100,
        reasons=[reason],
        rules=[],
        intents=[],
        normalized=f"{operation} {path!r}"[:300],
        levels_run=["paths"],
        engine_version=ENGINE_VERSION,
        policy_version=policy_version,
        contributions=[Contribution("paths:invalid", 100, reason)],
        flags=[flag],
    )


def check_path(operation: str, path: str, context: Context | None = None) -> Verdict:
    """Judge one read/list/write of ``path``. Never raises on input; see module docstring."""
    context = context or Context()
    policy: Policy = context.policy if context.policy is not None else default_policy()
    if operation not in PATH_OPERATIONS:
        return _refuse(
            operation, path, f"unknown file operation {operation!r}", "bad_operation", policy.version
        )
    if not isinstance(path, str):
        return _refuse(operation, path, "path is not text", "binary", policy.version)
    if not path.strip():
        return _refuse(operation, path, "empty path", "empty", policy.version)
    if "\x00" in path or any(0xD800 <= ord(ch) <= 0xDFFF for ch in path):
        # NUL truncates paths in C; lone surrogates come from undecodable bytes.
        return _refuse(operation, path, "path contains NUL or undecodable bytes", "binary", policy.version)
    if len(path) > MAX_PATH_LENGTH:
        return _refuse(
            operation, path, f"path longer than {MAX_PATH_LENGTH} characters", "too_large", policy.version
        )

    normal, notes = normalise_path(path, context)
    case_insensitive = (context.host.os or "").lower() in _CASE_INSENSITIVE_OS
    if case_insensitive:
        normal = _MACOS_PRIVATE.sub("", normal)
        folded = normal.lower()
        table = _COMPILED_FOLDED[operation]
        matched = [entry for needle, entry, glob in table if needle in folded and glob.match(normal)]
    else:
        table = _COMPILED[operation]
        matched = [entry for needle, entry, glob in table if needle in normal and glob.match(normal)]
    hits: list[RuleHit] = []
    contributions: list[Contribution] = []
    table_decision = Decision.AUTO
    for entry in dict.fromkeys(matched):  # one hit per entry, in table order
        hits.append(
            RuleHit(
                id=entry.id,
                pack="paths",
                severity=_SEVERITY[entry.decision],
                explanation=entry.explanation,
                attack=entry.attack,
                command=f"{operation} {normal}",
                category=entry.category,
                suggested="deny" if entry.decision is Decision.DENY else "ask",
            )
        )
        table_decision = Decision.strictest(table_decision, entry.decision)

    # The score is the strongest table hit; one contribution, so the breakdown adds up.
    score = 0
    if hits:
        strongest = max(hits, key=lambda hit: _SCORE[_decision_of(hit)])
        score = _SCORE[_decision_of(strongest)]
        contributions.append(Contribution(f"path:{strongest.id}", score, strongest.explanation))

    outcome = policy.evaluate_path(
        operation, normal, agent=context.agent, cwd=context.cwd, case_insensitive=case_insensitive
    )
    decision = Decision.strictest(table_decision, policy.decision_for_score(score))
    if outcome.decision is not None and outcome.decision is not Decision.AUTO:
        decision = Decision.strictest(decision, outcome.decision)

    reasons = [f"{hit.explanation} ({hit.id}, ATT&CK {hit.attack})" for hit in hits]
    reasons.extend(outcome.reasons)
    reasons.extend(notes)
    if not reasons:
        reasons.append(f"no sensitive-path rule or policy rule matches {operation} {normal}")
    return Verdict(
        decision=decision,
        score=score,
        reasons=reasons,
        rules=hits,
        intents=[],
        normalized=f"{operation} {normal}",
        levels_run=list(LEVELS_RUN),
        engine_version=ENGINE_VERSION,
        policy_version=policy.version,
        contributions=contributions,
        policy_matches=list(outcome.matches),
        flags=["relative"] if notes else [],
    )


def _decision_of(hit: RuleHit) -> Decision:
    return {"critical": Decision.DENY, "high": Decision.HARD_ASK}.get(hit.severity, Decision.SOFT_ASK)
