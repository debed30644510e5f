// The dashboard script's pure helpers under node's own test runner (no browser, no DOM).
// Run by tests/unit/test_dashboard_js.py, which passes the packaged app.js in FLOWLINK_DASHBOARD_JS.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");

const dashboard = require(process.env.FLOWLINK_DASHBOARD_JS);

test("visibleText shows characters that hide or reorder a command", () => {
  const { visibleText } = dashboard;
  assert.equal(visibleText("rm -rf /tmp/x\u202e# harmless"), "rm -rf /tmp/x\\u202E# harmless");
  assert.equal(visibleText("echo \x1b[2Jhi\r"), "echo \\x1B[2Jhi\\x0D");
  assert.equal(visibleText("a\u200bb\ufeff\u2066c"), "a\\u200Bb\\uFEFF\\u2066c");
  assert.equal(visibleText("\x00\x7f\x9b"), "\\x00\\x7F\\x9B");
  // Newlines and tabs are what a multi-line command really contains; HTML stays text.
  assert.equal(visibleText("a\n\tb <script>&amp;"), "a\n\tb <script>&amp;");
  assert.equal(visibleText(null), "");
  assert.equal(visibleText(42), "42");
});

test("shorten cuts after making text visible", () => {
  assert.equal(dashboard.shorten("abcdef", 4), "abc…");
  assert.equal(dashboard.shorten("abc", 4), "abc");
  assert.equal(dashboard.shorten("\u202e", 20), "\\u202E");
});

test("formatCountdown counts down to expired", () => {
  const { formatCountdown } = dashboard;
  assert.equal(formatCountdown(0), "expired");
  assert.equal(formatCountdown(-5000), "expired");
  assert.equal(formatCountdown(NaN), "expired");
  assert.equal(formatCountdown(1), "0:01");
  assert.equal(formatCountdown(65000), "1:05");
  assert.equal(formatCountdown(599500), "10:00");
  assert.equal(formatCountdown(3600000), "1:00:00");
  assert.equal(formatCountdown(3725000), "1:02:05");
});

test("formatAgo and formatTime", () => {
  const now = Date.parse("2026-11-25T09:00:00Z");
  assert.equal(dashboard.formatAgo("2026-11-25T08:59:58.5Z", now), "just now");
  assert.equal(dashboard.formatAgo("2026-11-25T08:59:30Z", now), "30 s ago");
  assert.equal(dashboard.formatAgo("2026-11-25T08:55:00Z", now), "5 min ago");
  assert.equal(dashboard.formatAgo("2026-11-25T06:00:00Z", now), "3 h ago");
  assert.equal(dashboard.formatAgo("2026-11-20T06:00:00.123456Z", now), "2026-11-20 06:00:00 UTC");
  assert.equal(dashboard.formatAgo(null, now), "never");
  assert.equal(dashboard.formatTime("garbage"), "—");
});

test("approvalProgress counts approvals only, against what is needed", () => {
  const { approvalProgress } = dashboard;
  assert.equal(approvalProgress({ needed: 2, decisions: [{ decision: "approve", approver: "alice" }] }), "1 of 2 approvals");
  assert.equal(approvalProgress({ needed: 1, decisions: [] }), "0 of 1 approval");
  assert.equal(approvalProgress({ needed: 2, decisions: [{ decision: "deny" }] }), "0 of 2 approvals");
  assert.equal(approvalProgress({}), "0 of 1 approval");
});

test("buildUrl fills and encodes path parameters and drops empty query values", () => {
  const { buildUrl } = dashboard;
  assert.equal(buildUrl("decide", { approval_id: "apr_1" }), "/api/v1/approvals/apr_1");
  assert.equal(buildUrl("history", { agent: "a/b?c#d" }), "/api/v1/agents/a%2Fb%3Fc%23d/commands");
  assert.equal(buildUrl("events", {}, { limit: 25, page_token: null, text: "" }), "/api/v1/audit/events?limit=25");
  assert.equal(buildUrl("events", {}, { page_token: "a+b=" }), "/api/v1/audit/events?page_token=a%2Bb%3D");
  assert.throws(() => buildUrl("history", { agent: ".." }), /invalid path parameter/);
  assert.throws(() => buildUrl("decide", {}), /missing path parameter/);
  assert.throws(() => buildUrl("nope"), /unknown API call/);
});

test("requestFor builds the request the integration test replays", () => {
  const { requestFor, decisionBody } = dashboard;
  const post = requestFor("decide", "flk_live_k", {
    params: { approval_id: "apr_1" },
    body: decisionBody("approve", "  looks fine  "),
  });
  assert.equal(post.url, "/api/v1/approvals/apr_1");
  assert.equal(post.init.method, "POST");
  assert.deepEqual(post.init.headers, {
    Accept: "application/json",
    Authorization: "Bearer flk_live_k",
    "Content-Type": "application/json",
  });
  assert.equal(post.init.body, '{"decision":"approve","comment":"looks fine"}');
  assert.equal(post.init.credentials, "omit");
  const get = requestFor("approvals", "flk_live_k", { query: { status: "pending" } });
  assert.equal(get.url, "/api/v1/approvals?status=pending");
  assert.equal(get.init.method, "GET");
  assert.equal(get.init.body, undefined);
  assert.equal(get.init.headers["Content-Type"], undefined);
  assert.deepEqual(decisionBody("deny", "   "), { decision: "deny" });
});

test("describeError says what a 401 and a 403 mean", () => {
  const { describeError } = dashboard;
  assert.match(describeError(401, "invalid API key"), /did not accept this key \(invalid API key\)\. Paste a valid API key\./);
  assert.match(describeError(403, "agents cannot approve"), /^This key is not allowed to do that: agents cannot approve$/);
  assert.match(describeError(0, "Failed to fetch"), /did not answer/);
  assert.match(describeError(500, ""), /HTTP 500\): no detail given/);
});

test("chainBadge and attestationBadges", () => {
  const { chainBadge, attestationBadges } = dashboard;
  assert.deepEqual(chainBadge({ intact: true, length: 12, head_hash: "ab".repeat(32) }),
    { state: "ok", text: "Chain intact", detail: "12 records, head abababababab…" });
  assert.deepEqual(chainBadge({ intact: false, length: 12, broken_at: 7, reason: "chain_hash mismatch" }),
    { state: "bad", text: "Chain broken", detail: "first bad record #7: chain_hash mismatch" });
  assert.equal(chainBadge(null).state, "unknown");
  assert.deepEqual(
    attestationBadges({
      gateway: { status: "ATTESTED" },
      relays: [{ relay_id: "rly_1", name: "web-01", status: "TAMPERED" }, { relay_id: "rly_2", status: null }],
    }),
    [
      { label: "gateway", state: "ok", text: "ATTESTED" },
      { label: "web-01", state: "bad", text: "TAMPERED" },
      { label: "rly_2", state: "unknown", text: "no baseline" },
    ],
  );
});

test("describeActor and summarizeFields", () => {
  assert.equal(dashboard.describeActor({ approver: "alice", channel: "telegram" }), "alice (telegram)");
  assert.equal(dashboard.describeActor({ key_id: "key_1", name: "ci", scope: "agent" }), "ci (agent)");
  assert.equal(dashboard.describeActor(null), "—");
  assert.equal(dashboard.summarizeFields({ a: 1, b: null, c: { d: 2 }, e: "" }), 'a=1, c={"d":2}');
});
