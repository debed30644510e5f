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


def test_encrypt_to_the_private_key_file_is_refused_with_advice(tmp_path):
    assert _flowlink("keygen", "--out", str(tmp_path / "k1")).returncode == 0
    result = _flowlink("encrypt", "--to", str(tmp_path / "k1" / "box.key"), stdin=b"v")
    assert result.returncode == 2 and result.stdout == b""
    assert b"is the private key; pass the .pub file" in result.stderr and b"box.pub" in result.stderr


def test_an_unlabelled_private_key_is_recognised_by_its_public_half_next_to_it(tmp_path):
    # Files from before keygen labelled the private key: one line of base64 each.
    assert _flowlink("keygen", "--out", str(tmp_path)).returncode == 0
    bare = (tmp_path / "box.key").read_text().splitlines()[-1] + "\n"
    (tmp_path / "box.key").write_text(bare)
    (tmp_path / "box.key").chmod(0o644)
    result = _flowlink("encrypt", "--to", str(tmp_path / "box.key"), stdin=b"v")
    assert result.returncode == 2 and b"is the private key" in result.stderr
    enc = _flowlink("encrypt", "--to", str(tmp_path / "box.pub"), stdin=b"old-format")
    dec = _flowlink("decrypt", "--key", str(tmp_path / "box.key"), stdin=enc.stdout)
    assert dec.returncode == 0 and dec.stdout == b"old-format"


def test_encrypt_to_a_missing_file_says_so_and_an_inline_key_still_works(tmp_path):
    missing = _flowlink("encrypt", "--to", "/nonexistent", stdin=b"v")
    assert missing.returncode == 2 and b"/nonexistent does not exist" in missing.stderr
    assert b"base64" not in missing.stderr.split(b"(")[0]
    assert _flowlink("keygen", "--out", str(tmp_path)).returncode == 0
    inline = (tmp_path / "box.pub").read_text().strip()
    enc = _flowlink("encrypt", "--to", inline, stdin=b"inline")
    assert enc.returncode == 0, enc.stderr
    dec = _flowlink("decrypt", "--key", str(tmp_path / "box.key"), stdin=enc.stdout)
    assert dec.stdout == b"inline"


def test_decrypt_and_encrypt_name_a_directory_or_missing_input_clearly(tmp_path):
    assert _flowlink("keygen", "--out", str(tmp_path)).returncode == 0
    dec = _flowlink("decrypt", "--key", str(tmp_path / "box.key"), "--in", str(tmp_path))
    assert dec.returncode == 2 and b"is a directory" in dec.stderr and b"Errno" not in dec.stderr
    nokey = _flowlink("decrypt", "--key", str(tmp_path / "nope.key"), stdin=b"{}")
    assert nokey.returncode == 2 and b"private key file" in nokey.stderr and b"does not exist" in nokey.stderr
    enc = _flowlink("encrypt", "--to", str(tmp_path / "box.pub"), "--in", str(tmp_path / "missing.txt"))
    assert enc.returncode == 2 and b"plaintext file" in enc.stderr and b"Traceback" not in enc.stderr
