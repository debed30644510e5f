"""Approval grants bind one approval to exactly one command, relay and command id."""

import time

import pytest
from flowlink.grants import GrantError, issue_grant, verify_grant
from flowlink.relay_protocol import generate_signing_key

pytestmark = pytest.mark.unit

KEY = generate_signing_key()
COMMAND = "systemctl restart nginx"


def _grant(**overrides):
    args = {"relay_id": "rly_1", "org_id": "org_1", "command_id": "cmd_1", "approval_id": "apr_1",
            "command": COMMAND, "approvers": ["alice"]}
    args.update(overrides)
    return issue_grant(KEY, **args)


def test_verify_grant_accepts_exact_binding():
    claims = verify_grant(_grant(), KEY.public_key(), relay_id="rly_1", command_id="cmd_1", command=COMMAND)
    assert claims["jti"] == "apr_1" and claims["approvers"] == ["alice"]


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"relay_id": "rly_2"}, "another relay"),
        ({"command_id": "cmd_2"}, "another command id"),
        ({"command": COMMAND + "; rm -rf /"}, "does not match"),
    ],
)
def test_verify_grant_refuses_replay_for_other_binding(kwargs, reason):
    target = {"relay_id": "rly_1", "command_id": "cmd_1", "command": COMMAND}
    target.update(kwargs)
    with pytest.raises(GrantError, match=reason):
        verify_grant(_grant(), KEY.public_key(), **target)


def test_verify_grant_refuses_expired_grant():
    token = _grant(now=time.time() - 3600)
    with pytest.raises(GrantError, match="expired"):
        verify_grant(token, KEY.public_key(), relay_id="rly_1", command_id="cmd_1", command=COMMAND)


def test_verify_grant_refuses_grant_signed_by_another_key():
    forged = issue_grant(generate_signing_key(), relay_id="rly_1", org_id="org_1", command_id="cmd_1",
                         approval_id="apr_1", command=COMMAND, approvers=["mallory"])
    with pytest.raises(GrantError, match="signature"):
        verify_grant(forged, KEY.public_key(), relay_id="rly_1", command_id="cmd_1", command=COMMAND)


def test_verify_grant_refuses_missing_grant():
    with pytest.raises(GrantError, match="no approval grant"):
        verify_grant(None, KEY.public_key(), relay_id="rly_1", command_id="cmd_1", command=COMMAND)
