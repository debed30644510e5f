"""CLI file arguments that cannot be used (missing directory, a directory, no permission)
give one clear line and exit 2, never a traceback."""

from __future__ import annotations

import argparse
import os

import pytest
from flowlink import relay_protocol
from flowlink.cli import audit_cmd, crypto_cmd, files

pytestmark = pytest.mark.unit

PEM = relay_protocol.public_key_to_pem(relay_protocol.generate_signing_key())


class FakeApi:
    def request(self, method, path, **_):
        if path.endswith("/public-key"):
            return {"public_key_pem": PEM, "key_id": "kid_test"}
        return {"content": "{}\n", "records": 1}


def run(module, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flowlink")
    module.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def fake_api(monkeypatch):
    monkeypatch.setattr(audit_cmd, "_api", lambda args: FakeApi())


def _bad_outputs(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    return {
        "missing dir": (tmp_path / "nonexistent" / "dir" / "x.pub", "does not exist"),
        "a directory": (tmp_path, "is a directory"),
        "permission": (locked / "x.pub", "permission denied"),
    }


@pytest.mark.parametrize("case", ["missing dir", "a directory", "permission"])
@pytest.mark.parametrize("argv", [["audit", "public-key", "--out"], ["audit", "export", "--out"]])
def test_audit_writes_report_an_unusable_out_path_in_one_line(tmp_path, fake_api, capsys, case, argv):
    if case == "permission" and os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    path, words = _bad_outputs(tmp_path)[case]
    assert run(audit_cmd, [*argv, str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and str(path) in err and "Traceback" not in err


def test_audit_public_key_still_writes_a_good_out_path(tmp_path, fake_api):
    assert run(audit_cmd, ["audit", "public-key", "--out", str(tmp_path / "gw.pub")]) == 0
    assert (tmp_path / "gw.pub").read_text() == PEM


@pytest.mark.parametrize("argv", [["verify", "{file}", "--public-key", "{key}"],
                                  ["verify", "{dir}", "--public-key", "{key}"],
                                  ["verify-proof", "{file}", "--public-key", "{missing}"],
                                  ["verify-proof", "{dir}", "--public-key", "{key}"]])
def test_audit_reads_report_a_missing_file_or_a_directory_clearly(tmp_path, capsys, argv):
    key = tmp_path / "gw.pem"
    key.write_text(PEM)
    names = {"file": str(tmp_path / "missing.jsonl"), "dir": str(tmp_path), "key": str(key),
             "missing": str(tmp_path / "missing.pem")}
    assert run(audit_cmd, ["audit", *[a.format(**names) for a in argv]]) == 2
    err = capsys.readouterr().err
    assert ("does not exist" in err or "is a directory" in err) and "Errno" not in err


def test_keygen_into_a_file_or_an_uncreatable_directory_is_a_clear_usage_error(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert run(crypto_cmd, ["keygen", "--out", str(tmp_path / "file")]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err
    assert run(crypto_cmd, ["keygen", "--out", str(tmp_path / "file" / "sub")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_describe_names_the_missing_directory_when_writing():
    message = files.describe(FileNotFoundError(2, "No such file or directory"), "/no/dir/x.pub",
                             what="output file", writing=True)
    assert message == "cannot write output file /no/dir/x.pub: the directory /no/dir does not exist (create it first)"


def test_describe_says_permission_denied_for_reads_and_writes():
    denied = PermissionError(13, "Permission denied")
    assert files.describe(denied, "/x/y", what="export", writing=False) == "cannot read export /x/y: permission denied"
    assert files.describe(denied, "/x/y", what="export", writing=True) == "cannot write export /x/y: permission denied"
