"""The relay's book of org policies: verified policy documents, compiled, found by digest.

The gateway signs the org's policy for each relay (``relay_protocol.sign_policy_document``)
and names, in every command envelope, the policy that must judge the command
(``relay_protocol.PolicyRef``: version and SHA-256 of the text). ``PolicyBook`` keeps the
documents a relay has verified and answers "which compiled policy is that?":

- an envelope naming no policy, or the default (``sha256`` null), gets the built-in
  default policy, as before org policies reached relays;
- an envelope naming a policy the book holds gets exactly that policy, provided this
  relay compiles it to the version the gateway named;
- anything else raises ``PolicyUnavailable``: the caller refuses the command (or fetches
  the document first). There is no fallback to another policy.

Never accepts a document that is unsigned, signed by another key, addressed to another
relay or org, or whose text does not match its digest. Pure: no I/O, thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from flowlink.relay_protocol import PolicyDocument, PolicyDocumentError, PolicyRef, verify_policy_document
from shield.policy import Policy, PolicyError, default_policy, load_policy

# Policies kept per relay: an org rarely has more than a couple in flight at once (the
# current one and the one being replaced); older ones are only named by expired envelopes.
DEFAULT_CAPACITY = 16
# The name compiled policies get in error messages; the gateway uses the same one.
POLICY_SOURCE = "org-policy.yaml"


class PolicyUnavailable(Exception):
    """The policy an envelope names cannot be used here; ``reason`` says why (safe to report)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class PolicyMissing(PolicyUnavailable):
    """The named policy has not reached this relay (yet): fetching it may help."""


class PolicyBook:
    """Verified, compiled org policies by SHA-256 of their text."""

    def __init__(
        self,
        *,
        relay_id: str,
        org_id: str,
        gateway_key: Ed25519PublicKey,
        capacity: int = DEFAULT_CAPACITY,
        compile_policy: Callable[[str], Policy] | None = None,
        default: Callable[[], Policy] = default_policy,
    ):
        """``compile_policy`` defaults to ``shield.policy.load_policy``; ``default`` gives the
        built-in default policy."""
        self.relay_id = relay_id
        self.org_id = org_id
        self.gateway_key = gateway_key
        self._capacity = capacity
        self._compile = compile_policy or (lambda text: load_policy(text, source=POLICY_SOURCE))
        self._default = default
        self._lock = threading.Lock()
        self._policies: OrderedDict[str, Policy] = OrderedDict()
        # Why an authentic document could not be used (compile error, version skew), by digest.
        self._failures: dict[str, str] = {}
        self.accepted = 0
        self.rejected = 0

    def add(self, token: Any) -> PolicyDocument:
        """Verify, compile and keep one policy document; returns it.

        Raises PolicyDocumentError when the document is not authentic (it is forgotten),
        or when this relay cannot compile it to the version the gateway signed (the reason
        is kept and reported when an envelope names that policy).
        """
        try:
            document = verify_policy_document(
                token, self.gateway_key, relay_id=self.relay_id, org_id=self.org_id
            )
        except PolicyDocumentError:
            with self._lock:
                self.rejected += 1
            raise
        if document.sha256 is None:
            # The org uses the built-in default: nothing to compile or keep.
            with self._lock:
                self.accepted += 1
            return document
        try:
            policy = self._compile(document.text or "")
        except PolicyError as exc:
            raise self._unusable(document, f"policy {document.version} does not compile on this relay: {exc}") from None
        if policy.version != document.version:
            raise self._unusable(
                document,
                f"policy compiles to {policy.version} on this relay but the gateway signed "
                f"{document.version} (gateway and relay Shield versions differ)",
            )
        with self._lock:
            self._policies[document.sha256] = policy
            self._policies.move_to_end(document.sha256)
            while len(self._policies) > self._capacity:
                self._policies.popitem(last=False)
            self._failures.pop(document.sha256, None)
            self.accepted += 1
        return document

    def _unusable(self, document: PolicyDocument, reason: str) -> PolicyDocumentError:
        """Remember why an authentic document cannot be used; returns the error to raise."""
        with self._lock:
            self.rejected += 1
            self._failures[document.sha256 or ""] = reason
            while len(self._failures) > self._capacity:
                self._failures.pop(next(iter(self._failures)))
        return PolicyDocumentError(reason)

    def resolve(self, ref: PolicyRef | None) -> Policy:
        """The compiled policy ``ref`` names (None or a null digest: the built-in default).

        Raises PolicyMissing when no document for it has arrived, PolicyUnavailable when
        one arrived but cannot be used, or when it is not the version the envelope names.
        """
        if ref is None or ref.sha256 is None:
            return self._default()
        with self._lock:
            policy = self._policies.get(ref.sha256)
            failure = self._failures.get(ref.sha256)
        if policy is None:
            if failure is not None:
                raise PolicyUnavailable(f"org policy {ref.version} unusable: {failure}")
            raise PolicyMissing(
                f"org policy {ref.version} (sha256 {ref.sha256[:12]}) has not reached this relay"
            )
        if policy.version != ref.version:
            raise PolicyUnavailable(
                f"envelope names policy {ref.version} but its text is policy {policy.version} here"
            )
        return policy

    def versions(self) -> list[str]:
        """The versions held, oldest first (for health output)."""
        with self._lock:
            return [policy.version for policy in self._policies.values()]
