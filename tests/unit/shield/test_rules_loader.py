"""Rule pack loading, validation errors, and the facts rules are built on (flags, paths, hosts, SQL)."""

from __future__ import annotations

import pytest

from shield.model import ParseResult, Redirect, SimpleCommand
from shield.rules import (
    PathEnv,
    RulePackError,
    build_ruleset,
    classify_host,
    classify_path,
    match_parse,
    sql_kinds,
)
from shield.rules.facts import hosts_in, split_args
from shield.rules.loader import load_text

pytestmark = pytest.mark.unit


def _pack(rules: list[dict], **extra) -> dict:
    return {"pack": "t", "rules": rules, **extra}


def _rule(**overrides) -> dict:
    base = {
        "id": "t.rule",
        "severity": "high",
        "decision": "deny",
        "attack": "T1485",
        "category": "destruction",
        "explanation": "test rule",
        "match": {"command": ["rm"]},
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (_rule(colour="red"), "unknown key(s): colour"),
        (_rule(severity="huge"), "severity must be one of"),
        (_rule(decision="maybe"), "decision must be one of"),
        (_rule(attack="T12"), "attack must be a MITRE ATT&CK technique id"),
        (_rule(match={"command": ["rm"], "flagz": ["-r"]}), "unknown match key(s): flagz"),
        (_rule(match={"args_re": "("}), "is not a valid regex"),
        ({k: v for k, v in _rule().items() if k != "explanation"}, "missing `explanation`"),
        (_rule(line={"tags_all": ["x"]}), "needs exactly one of `match` or `line`"),
        # What YAML makes of bare `true` and `-0`: they must be quoted to stay words.
        (_rule(match={"command": ["ls", True]}), "match.command must hold strings; quote True"),
        (_rule(match={"command": ["rm"], "flags_none": [0]}), "match.flags_none must hold strings; quote 0"),
        (_rule(match={"command": ["rm"], "flags_all": [["-r", None]]}), "match.flags_all must hold strings"),
    ],
)
def test_rules_loader_rejects_bad_rules_naming_file_and_rule(rule, message):
    with pytest.raises(RulePackError) as caught:
        build_ruleset([("packs/bad.yaml", _pack([rule]))])
    assert "packs/bad.yaml" in str(caught.value)
    assert "t.rule" in str(caught.value)
    assert message in str(caught.value)


def test_rules_loader_rejects_duplicate_ids_across_files():
    with pytest.raises(RulePackError, match="already used in a.yaml"):
        build_ruleset([("a.yaml", _pack([_rule()])), ("b.yaml", {"pack": "u", "rules": [_rule()]})])


def test_rules_loader_reports_yaml_syntax_errors_with_line():
    with pytest.raises(RulePackError, match=r"broken\.yaml:\d+: invalid YAML"):
        load_text("pack: t\nrules:\n  - {id: x\n", "broken.yaml")


def test_rules_loader_indexes_rules_by_command_name():
    ruleset = build_ruleset([("a.yaml", _pack([_rule(), _rule(id="t.generic", match={"args_re": "x"})]))])
    assert [r.id for r in ruleset.by_name["rm"]] == ["t.rule"]
    assert [r.id for r in ruleset.generic] == ["t.generic"]
    assert [r.id for r in ruleset.candidates("ls")] == ["t.generic"]


def test_rules_flag_clusters_and_long_forms_are_equivalent():
    pack = _pack([_rule(match={"command": ["rm"], "flags_all": [["-r", "--recursive"], ["-f", "--force"]]})])
    ruleset = build_ruleset([("a.yaml", pack)])
    for args in (["-rf", "x"], ["-r", "-f", "x"], ["--recursive", "--force", "x"], ["-fr", "x"]):
        parsed = ParseResult(source="", commands=[SimpleCommand(name="rm", args=args)])
        assert [h.id for h in match_parse(ruleset, parsed, PathEnv()).hits] == ["t.rule"], args
    parsed = ParseResult(source="", commands=[SimpleCommand(name="rm", args=["-f", "x"])])
    assert match_parse(ruleset, parsed, PathEnv()).hits == []


def test_rules_split_args_takes_values_of_known_value_flags():
    from shield.rules.facts import CommandProfile

    view = split_args(
        ["-n", "prod", "delete", "pod", "--grace-period=0", "x"], CommandProfile(frozenset({"-n"}))
    )
    assert view.positionals == ["delete", "pod", "x"]
    assert view.values == {"-n": ["prod"], "--grace-period": ["0"]}


def test_rules_redirect_and_stdin_predicates_match_hand_built_commands():
    pack = _pack(
        [
            _rule(id="t.redirect", match={"redirect": {"op_any": [">"], "classes_any": ["block_device"]}}),
            _rule(
                id="t.pipe",
                match={"command": ["sh"], "stdin_from": ["curl"], "stdin_from_hosts_any": ["public_ip"]},
            ),
        ]
    )
    ruleset = build_ruleset([("a.yaml", pack)])
    curl = SimpleCommand(name="curl", args=["-s", "http://203.0.113.9/x"])
    parsed = ParseResult(
        source="",
        commands=[
            SimpleCommand(name="cat", args=["/dev/zero"], redirects=[Redirect(">", "/dev/nvme0n1")]),
            curl,
            SimpleCommand(name="sh", stdin_from=curl, stdin_is_network=True),
        ],
    )
    assert {h.id for h in match_parse(ruleset, parsed, PathEnv()).hits} == {"t.redirect", "t.pipe"}


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("/", {"root"}),
        ("/*", {"root"}),
        ("/etc", {"system"}),
        ("/usr/local/lib", {"system_file"}),
        ("/home/dev", {"home"}),
        ("~", {"home"}),
        ("~/Documents", {"home_child"}),
        ("~/.cache/pip", {"cache"}),
        ("/var/lib/mysql", {"data"}),
        ("/mnt/backups/db", {"backup"}),
        ("/srv/data", {"data"}),
        ("/dev/sda", {"block_device"}),
        ("/dev/null", {"pseudo_device"}),
        ("node_modules", {"project", "build"}),
        ("./dist", {"project", "build"}),
        ("src/app.py", {"project"}),
        ("~/.ssh/id_rsa", {"secret"}),
        ("/etc/shadow", {"secret", "critical_file"}),
        ("~/.bashrc", {"persistence", "shell_rc"}),
        ("/etc/cron.d/job", {"persistence"}),
        ("../../../../etc", {"escape", "system"}),
        ("/run/secrets/db_password", {"secret"}),
        ("/var/run/secrets/eks.amazonaws.com/serviceaccount/token", {"secret"}),
        ("/usr/lib/python3/dist-packages/sitecustomize.py", {"persistence"}),
        ("~/.local/lib/python3.12/site-packages/usercustomize.py", {"persistence"}),
        ("~/.local/share", {"home_child"}),
        ("~/Library/Application Support", {"home_child"}),
        ("~/.local/share/fonts", {"home_deep"}),
    ],
)
def test_rules_classify_path_knows_target_classes(word, expected):
    classes = classify_path(word, PathEnv(home="/home/dev"))
    assert expected <= classes, classes


def test_rules_python_startup_hooks_outside_site_packages_are_plain_files():
    assert "persistence" not in classify_path("src/sitecustomize.py", PathEnv(home="/home/dev"))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-display", "198.51.100.30:0"], [("198.51.100.30", "public_ip")]),
        (["-display", "xhost.evil.example:1.0", "-e", "top"], [("xhost.evil.example", "unknown")]),
        (["-display", ":0"], []),
        (["-fg", "white"], []),
    ],
)
def test_rules_hosts_in_reads_x_displays(args, expected):
    assert hosts_in(SimpleCommand(name="xterm", args=args)) == expected


def test_rules_classify_path_uses_project_root_for_absolute_paths():
    env = PathEnv(home="/home/dev", cwd="/home/dev/app", project_root="/home/dev/app")
    assert {"project", "build"} <= classify_path("/home/dev/app/dist", env)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("203.0.113.7", "public_ip"),
        ("attacker.example", "unknown"),
        ("10.1.2.3", "internal"),
        ("db-prod-01.internal", "internal"),
        ("localhost", "local"),
        ("sh.rustup.rs", "vendor"),
        ("raw.githubusercontent.com", "vendor"),
    ],
)
def test_rules_classify_host(host, expected):
    assert classify_host(host) == expected


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("DROP DATABASE x;", "drop_database"),
        ("drop schema public cascade", "drop_database"),
        ("FLUSHALL", "drop_database"),
        ("db.dropDatabase()", "drop_database"),
        ("TRUNCATE users", "truncate"),
        ("DELETE FROM users;", "delete_all"),
        ("DELETE FROM users WHERE id = 1", "delete_scoped"),
        ("UPDATE t SET a = 1", "update_all"),
        ("db.t.deleteMany({})", "delete_all"),
        ("db.t.deleteMany({a: 1})", "delete_scoped"),
        ("SELECT 1", "read"),
    ],
)
def test_rules_sql_kinds(text, kind):
    assert kind in sql_kinds(text)
