"""`flowlink keygen/encrypt/decrypt` as a user runs them: real subprocesses, stdin only."""

import json
import os
import stat
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def _flowlink(*args, stdin=b""):
    return subprocess.run([sys.executable, "-m", "flowlink.cli", *args], input=stdin, capture_output=True, timeout=60, check=False)


def test_keygen_encrypt_decrypt_round_trip(tmp_path):
    assert _flowlink("keygen", "--out", str(tmp_path)).returncode == 0
    assert stat.S_IMODE(os.stat(tmp_path / "box.key").st_mode) == 0o600
    enc = _flowlink("encrypt", "--to", str(tmp_path / "box.pub"), stdin=b"hunter2-value")
    assert enc.returncode == 0, enc.stderr
    assert b"hunter2" not in enc.stdout
    dec = _flowlink("decrypt", "--key", str(tmp_path / "box.key"), stdin=enc.stdout)
    assert dec.returncode == 0 and dec.stdout == b"hunter2-value"


def test_keygen_refuses_to_overwrite(tmp_path):
    assert _flowlink("keygen", "--out", str(tmp_path)).returncode == 0
    again = _flowlink("keygen", "--out", str(tmp_path))
    assert again.returncode == 2 and b"--force" in again.stderr


def test_decrypt_with_wrong_key_fails_clearly(tmp_path):
    _flowlink("keygen", "--out", str(tmp_path / "a"))
    _flowlink("keygen", "--out", str(tmp_path / "b"))
    enc = _flowlink("encrypt", "--to", str(tmp_path / "a" / "box.pub"), stdin=b"v")
    dec = _flowlink("decrypt", "--key", str(tmp_path / "b" / "box.key"), stdin=enc.stdout)
    assert dec.returncode == 3 and b"another key" in dec.stderr
    assert json.loads(enc.stdout)["alg"] == "x25519-sealedbox"


def test_encrypt_rejects_malformed_public_key():
    result = _flowlink("encrypt", "--to", "not-a-key", stdin=b"v")
    assert result.returncode == 3 and b"public key" in result.stderr
