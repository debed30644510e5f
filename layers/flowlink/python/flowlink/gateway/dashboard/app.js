/*
 * FlowLink dashboard: pending approvals, agents, command history, audit events and the
 * integrity badges, drawn from the gateway's own REST API with the key the user pastes.
 *
 * Rules this file keeps (tests/integration/test_dashboard.py checks them):
 * - Every request goes through call(), built from the API table below and nowhere else,
 *   so the tests can check each path and method against the app's real routes.
 * - Commands, names and reasons are attacker-controlled strings. They reach the page only
 *   as text nodes (textContent / append of strings), after visibleText() has made control,
 *   zero-width and bidi characters visible. No HTML string is ever parsed from data, and the
 *   page's CSP (Trusted Types) makes the browser refuse HTML string sinks anyway.
 * - The key lives in sessionStorage (this tab only), goes out only as a Bearer header to
 *   this origin, and is dropped when the gateway says it is not valid.
 * The pure helpers at the top are exported for node (tests/unit/test_dashboard_js.py).
 */
"use strict";

// The REST calls this page makes: name → method and path ({param} is filled in, encoded).
const API = Object.freeze({
  approvals: { method: "GET", path: "/api/v1/approvals" },
  decide: { method: "POST", path: "/api/v1/approvals/{approval_id}" },
  agents: { method: "GET", path: "/api/v1/agents" },
  history: { method: "GET", path: "/api/v1/agents/{agent}/commands" },
  integrity: { method: "GET", path: "/api/v1/audit/integrity" },
  events: { method: "GET", path: "/api/v1/audit/events" },
  attestation: { method: "GET", path: "/api/v1/attestation/report" },
});

const KEY_STORAGE = "flowlink.dashboard.apiKey";
const REFRESH_MS = 4000;
// How many refresh ticks between two calls of each section. The integrity check reads the
// whole audit log and the attestation report hashes the gateway's code: keep them rarer.
const EVERY = Object.freeze({ approvals: 1, agents: 2, history: 2, events: 2, integrity: 8, attestation: 8 });
const PAGE_SIZE = Object.freeze({ history: 20, events: 25 });
const TOP_REASONS = 3;
const REQUEST_TIMEOUT_MS = 15000;

// ---------------------------------------------------------------- pure helpers (no DOM)

// Characters that can hide or reorder what a command really says: C0/C1 controls (except
// newline and tab, which a <pre> shows honestly), DEL, bidi overrides and isolates, and
// zero-width characters. Each is replaced by a visible escape such as \u202E or \x1B.
const INVISIBLE = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u061C\u200B-\u200F\u202A-\u202E\u2060-\u2069\uFEFF]/g;

function visibleText(value) {
  if (value === null || value === undefined) return "";
  return String(value).replace(INVISIBLE, (ch) => {
    const code = ch.charCodeAt(0);
    const hex = code.toString(16).toUpperCase();
    return code <= 0xff ? "\\x" + hex.padStart(2, "0") : "\\u" + hex.padStart(4, "0");
  });
}

function shorten(text, max) {
  const value = visibleText(text);
  return value.length > max ? value.slice(0, max - 1) + "…" : value;
}

function buildUrl(name, params, query) {
  const entry = API[name];
  if (!entry) throw new Error("unknown API call " + name);
  const path = entry.path.replace(/\{(\w+)\}/g, (_, key) => {
    const value = params ? params[key] : undefined;
    if (value === undefined || value === null || value === "") throw new Error("missing path parameter " + key);
    const encoded = encodeURIComponent(String(value));
    // URL parsing would resolve "." and ".." segments into another path.
    if (encoded === "." || encoded === "..") throw new Error("invalid path parameter " + key);
    return encoded;
  });
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? path + "?" + text : path;
}

// The exact URL and options one API call hands to fetch (the integration test replays them).
function requestFor(name, key, options) {
  const { params, query, body } = options || {};
  const headers = { Accept: "application/json", Authorization: "Bearer " + key };
  const init = { method: API[name].method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return { url: buildUrl(name, params, query), init };
}

function decisionBody(decision, comment) {
  const text = (comment || "").trim();
  return text ? { decision, comment: text } : { decision };
}

function describeError(status, detail) {
  const why = detail ? String(detail) : "no detail given";
  if (status === 401) return "The gateway did not accept this key (" + why + "). Paste a valid API key.";
  if (status === 403) return "This key is not allowed to do that: " + why;
  if (status === 0) return "The gateway did not answer: " + why;
  return "Request failed (HTTP " + status + "): " + why;
}

function formatCountdown(ms) {
  if (!Number.isFinite(ms) || ms <= 0) return "expired";
  const total = Math.ceil(ms / 1000);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours ? hours + ":" + String(minutes).padStart(2, "0") + ":" + seconds : minutes + ":" + seconds;
}

function formatAgo(iso, nowMs) {
  const then = Date.parse(iso || "");
  if (Number.isNaN(then)) return "never";
  const seconds = Math.floor((nowMs - then) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return seconds + " s ago";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
  if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
  return formatTime(iso);
}

function formatTime(iso) {
  const then = Date.parse(iso || "");
  if (Number.isNaN(then)) return "—";
  return new Date(then).toISOString().slice(0, 19).replace("T", " ") + " UTC";
}

function approvalProgress(approval) {
  const needed = Number(approval.needed) || 1;
  const given = (approval.decisions || []).filter((d) => d && d.decision === "approve").length;
  return given + " of " + needed + (needed === 1 ? " approval" : " approvals");
}

function scoreLevel(score) {
  if (score >= 80) return "high";
  if (score >= 50) return "medium";
  return "low";
}

function chainBadge(report) {
  if (!report || typeof report.intact !== "boolean") return { state: "unknown", text: "unknown", detail: "" };
  if (report.intact) {
    const head = report.head_hash ? ", head " + String(report.head_hash).slice(0, 12) + "…" : "";
    return { state: "ok", text: "Chain intact", detail: report.length + " records" + head };
  }
  const where = report.broken_at !== null && report.broken_at !== undefined
    ? "first bad record #" + report.broken_at : "break not located";
  return { state: "bad", text: "Chain broken", detail: where + (report.reason ? ": " + report.reason : "") };
}

function attestationState(status) {
  if (status === "ATTESTED") return { state: "ok", text: "ATTESTED" };
  if (status === "TAMPERED") return { state: "bad", text: "TAMPERED" };
  return { state: "unknown", text: "no baseline" };
}

function attestationBadges(report) {
  const badges = [];
  if (!report) return badges;
  if (report.gateway) badges.push({ label: "gateway", ...attestationState(report.gateway.status) });
  for (const relay of report.relays || []) {
    badges.push({ label: relay.name || relay.relay_id, ...attestationState(relay.status) });
  }
  return badges;
}

function describeActor(actor) {
  if (!actor || typeof actor !== "object") return "—";
  const who = actor.approver || actor.name || actor.username || actor.key_id || actor.type;
  const extra = actor.channel ? " (" + actor.channel + ")" : actor.scope ? " (" + actor.scope + ")" : "";
  return who ? String(who) + extra : JSON.stringify(actor);
}

function summarizeFields(fields) {
  if (!fields || typeof fields !== "object") return "";
  return Object.entries(fields)
    .filter(([, value]) => value !== null && value !== undefined && value !== "")
    .map(([key, value]) => key + "=" + (typeof value === "object" ? JSON.stringify(value) : String(value)))
    .join(", ");
}

// ---------------------------------------------------------------- DOM

const state = {
  key: null,
  agents: new Map(), // relay_id → agent
  cards: new Map(), // approval_id → card
  cardSerial: 0,
  history: { agent: null, tokens: [null], next: null },
  events: { tokens: [null], next: null },
  tick: 0,
  timer: null,
  refreshing: false,
  generation: 0, // bumped when the key changes: answers for the old key are dropped
};

class ApiError extends Error {
  constructor(status, code, detail) {
    super(describeError(status, detail));
    this.status = status;
    this.code = code;
  }
}

function $(id) {
  return document.getElementById(id);
}

// Build an element. Strings become text nodes (made visible first); props set properties or
// attributes, never HTML. Data must never reach an href/src: nothing here links out.
function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) {
      if (typeof value !== "function") throw new Error("event handler must be a function");
      node.addEventListener(name.slice(2), value);
    } else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : visibleText(child));
  }
  return node;
}

function setText(node, text) {
  const value = visibleText(text);
  // Unchanged text is left alone: rewriting it would drop a selection in it.
  if (node.textContent !== value) node.textContent = value;
}

async function call(name, options) {
  const generation = state.generation;
  const { url, init } = requestFor(name, state.key, options);
  let response;
  try {
    response = await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (err) {
    throw new ApiError(0, "network", err && err.message);
  }
  const text = await response.text();
  if (generation !== state.generation) throw new ApiError(-1, "stale", "answer for a key no longer in use");
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, body && body.error, (body && body.detail) || response.statusText);
  }
  return body;
}

function showStatus(text) {
  setText($("status"), text);
}

function showAlert(text) {
  const alert = $("alert");
  setText(alert, text);
  alert.hidden = !text;
}

// ---- approvals

function buildCard(approval) {
  const serial = ++state.cardSerial;
  const card = { approval };
  card.agent = h("strong");
  card.host = h("span", { class: "host" });
  card.score = h("span", { class: "score" });
  card.progress = h("span", { class: "progress" });
  card.countdown = h("span", { class: "countdown" });
  card.command = h("code");
  card.reasons = h("ul", { class: "reasons" });
  card.moreReasons = h("ul", { class: "reasons" });
  card.more = h("details", { class: "more-reasons", hidden: true }, h("summary", {}, "more reasons"), card.moreReasons);
  card.voters = h("p", { class: "voters" });
  card.comment = h("input", { id: "comment-" + serial, type: "text", maxlength: "1000", autocomplete: "off" });
  card.approve = h("button", { type: "button", class: "approve", onclick: () => decide(card, "approve") }, "Approve");
  card.deny = h("button", { type: "button", class: "deny", onclick: () => decide(card, "deny") }, "Deny");
  card.result = h("p", { class: "result", role: "status" });
  card.node = h(
    "li",
    { class: "approval" },
    h(
      "p",
      { class: "approval-head" },
      card.agent, " on ", card.host, " · score ", card.score, " · ", card.progress, " · expires in ", card.countdown,
    ),
    h("pre", { class: "command", dir: "ltr" }, card.command),
    card.reasons,
    card.more,
    card.voters,
    h(
      "div",
      { class: "decide" },
      h("label", { for: "comment-" + serial }, "Comment (optional)"),
      card.comment,
      card.approve,
      card.deny,
    ),
    card.result,
  );
  return card;
}

// What an approval asks about never changes: fill it in once, so a refresh never clears a
// selection in the command someone is copying.
function fillCard(card, approval) {
  setText(card.agent, approval.agent || approval.relay_id);
  setText(card.score, approval.score);
  card.score.className = "score score-" + scoreLevel(approval.score);
  setText(card.command, approval.command);
  const reasons = approval.reasons || [];
  card.reasons.replaceChildren(...reasons.slice(0, TOP_REASONS).map((r) => h("li", {}, r)));
  card.moreReasons.replaceChildren(...reasons.slice(TOP_REASONS).map((r) => h("li", {}, r)));
  card.more.hidden = reasons.length <= TOP_REASONS;
}

function updateCard(card, approval) {
  card.approval = approval;
  const agent = state.agents.get(approval.relay_id);
  setText(card.host, (agent && agent.hostname) || "unknown host");
  setText(card.progress, approvalProgress(approval));
  const voters = (approval.decisions || []).filter((d) => d && d.decision === "approve").map((d) => d.approver);
  setText(card.voters, voters.length ? "Approved so far by " + voters.join(", ") : "");
  card.voters.hidden = !voters.length;
  updateCountdown(card, Date.now());
}

function updateCountdown(card, now) {
  const left = Date.parse(card.approval.expires_at) - now;
  setText(card.countdown, formatCountdown(left));
  const expired = !(left > 0);
  card.node.classList.toggle("expired", expired);
  if (!card.busy) {
    card.approve.disabled = expired;
    card.deny.disabled = expired;
  }
}

async function decide(card, decision) {
  card.busy = true;
  card.approve.disabled = card.deny.disabled = true;
  card.result.classList.remove("error");
  setText(card.result, decision === "approve" ? "Approving…" : "Denying…");
  try {
    const result = await call("decide", {
      params: { approval_id: card.approval.approval_id },
      body: decisionBody(decision, card.comment.value),
    });
    setText(card.result, result.message || result.status);
    if (result.recorded) card.comment.value = "";
  } catch (err) {
    card.result.classList.add("error");
    setText(card.result, err.message);
    if (err.status === 401) signOut(err.message);
  } finally {
    card.busy = false;
    updateCountdown(card, Date.now());
    refresh(["approvals"]);
  }
}

function renderApprovals(approvals) {
  const list = $("approvals");
  const pending = approvals.filter((a) => a.status === "pending");
  const seen = new Set();
  pending.forEach((approval, index) => {
    seen.add(approval.approval_id);
    let card = state.cards.get(approval.approval_id);
    if (!card) {
      card = buildCard(approval);
      fillCard(card, approval);
      state.cards.set(approval.approval_id, card);
    }
    updateCard(card, approval);
    // Move only when out of place: moving a node would take focus from its comment field.
    if (list.children[index] !== card.node) list.insertBefore(card.node, list.children[index] || null);
  });
  for (const [id, card] of state.cards) {
    if (!seen.has(id)) {
      card.node.remove();
      state.cards.delete(id);
    }
  }
  setText($("approvals-count"), pending.length ? "(" + pending.length + ")" : "");
  $("approvals-empty").hidden = pending.length > 0;
  document.title = (pending.length ? "(" + pending.length + ") " : "") + "FlowLink dashboard";
}

// ---- agents and history

function renderAgents(agents) {
  state.agents = new Map(agents.map((a) => [a.relay_id, a]));
  const now = Date.now();
  $("agents").replaceChildren(
    ...agents.map((a) =>
      h(
        "tr",
        {},
        h("td", {}, a.name),
        h("td", {}, a.hostname || "—"),
        h("td", {}, h("span", { class: "pill pill-" + (a.status === "online" ? "ok" : "off") }, a.status || "unknown")),
        h("td", { title: a.last_seen || "" }, formatAgo(a.last_seen, now)),
        h("td", {}, a.version || "—"),
        h("td", {}, h("code", {}, a.relay_id)),
      ),
    ),
  );
  $("agents-empty").hidden = agents.length > 0;

  const select = $("history-agent");
  const current = state.history.agent;
  // Rebuild the options only when they change, so a refresh never closes an open list.
  const signature = JSON.stringify(agents.map((a) => [a.relay_id, a.name, a.status]));
  if (select.dataset.signature !== signature) {
    select.dataset.signature = signature;
    select.replaceChildren(
      ...agents.map((a) => h("option", { value: a.relay_id }, a.name + " (" + (a.status || "unknown") + ")")),
    );
  }
  if (!agents.some((a) => a.relay_id === current)) {
    state.history = { agent: agents.length ? agents[0].relay_id : null, tokens: [null], next: null };
  }
  if (state.history.agent) select.value = state.history.agent;
  select.disabled = !agents.length;
}

function renderHistory(result) {
  const commands = (result && result.commands) || [];
  state.history.next = (result && result.next_page_token) || null;
  $("history").replaceChildren(
    ...commands.map((c) => {
      const verdict = c.verdict || {};
      const gateway = verdict.gateway || {};
      const text = c.command || (c.op && c.path ? c.op + " " + c.path : c.op);
      return h(
        "tr",
        {},
        h("td", {}, formatTime(c.created_at)),
        h("td", { class: "cell-command", title: visibleText(text) }, h("code", { dir: "ltr" }, shorten(text, 160))),
        h("td", {}, (verdict.decision || "—") + (gateway.score !== undefined && gateway.score !== null ? " (" + gateway.score + ")" : "")),
        h("td", {}, c.status || "—"),
        h("td", {}, c.exit_code === null || c.exit_code === undefined ? "—" : c.exit_code),
        h("td", {}, c.duration_ms === null || c.duration_ms === undefined ? "—" : c.duration_ms + " ms"),
      );
    }),
  );
  $("history-empty").hidden = commands.length > 0;
  $("history-older").disabled = !state.history.next;
  $("history-newest").disabled = state.history.tokens.length <= 1;
}

// ---- audit and attestation

function renderEvents(result) {
  const events = (result && result.events) || [];
  state.events.next = (result && result.next_page_token) || null;
  $("events").replaceChildren(
    ...events.map((e) => {
      const details = summarizeFields(e.fields);
      return h(
        "tr",
        { class: e.hash_ok === false ? "bad-row" : null },
        h("td", {}, e.seq),
        h("td", {}, formatTime(e.ts)),
        h("td", {}, h("code", {}, e.kind || "—")),
        h("td", {}, describeActor(e.actor)),
        h("td", { class: "cell-details", title: visibleText(details) }, shorten(details, 200)),
        h("td", {}, e.hash_ok === false ? "MISMATCH" : "ok"),
      );
    }),
  );
  $("events-empty").hidden = events.length > 0;
  $("events-older").disabled = !state.events.next;
  $("events-newest").disabled = state.events.tokens.length <= 1;
}

function renderIntegrity(report) {
  const badge = chainBadge(report);
  const node = $("chain-badge");
  setText(node, badge.text);
  node.className = "badge badge-" + badge.state;
  setText($("chain-detail"), badge.detail);
}

function renderAttestation(report) {
  const badges = attestationBadges(report);
  $("attestation-badges").replaceChildren(
    ...(badges.length
      ? badges.map((b) => h("li", {}, h("span", { class: "badge-name" }, b.label), " ", h("span", { class: "badge badge-" + b.state }, b.text)))
      : [h("li", {}, "no report")]),
  );
}

// ---------------------------------------------------------------- refresh loop

const SECTIONS = {
  agents: async () => renderAgents((await call("agents")).agents || []),
  approvals: async () => renderApprovals((await call("approvals", { query: { status: "pending" } })).approvals || []),
  history: async () => {
    if (!state.history.agent) return renderHistory(null);
    const tokens = state.history.tokens;
    renderHistory(
      await call("history", {
        params: { agent: state.history.agent },
        query: { limit: PAGE_SIZE.history, page_token: tokens[tokens.length - 1] },
      }),
    );
  },
  events: async () => {
    const tokens = state.events.tokens;
    renderEvents(await call("events", { query: { limit: PAGE_SIZE.events, page_token: tokens[tokens.length - 1] } }));
  },
  integrity: async () => renderIntegrity(await call("integrity")),
  attestation: async () => renderAttestation(await call("attestation")),
};

async function refresh(names) {
  if (!state.key) return;
  // Agents first: approvals and history read hosts and the agent list from them.
  const ordered = names.includes("agents") ? ["agents", ...names.filter((n) => n !== "agents")] : names;
  const errors = [];
  for (const name of ordered) {
    try {
      await SECTIONS[name]();
    } catch (err) {
      if (err.status === 401) return signOut(err.message);
      if (err.status === -1) return; // the key changed meanwhile
      errors.push(err.message);
    }
  }
  showAlert(errors.length ? errors[0] : "");
  setText($("updated-at"), new Date().toLocaleTimeString());
}

async function tick() {
  if (state.refreshing || document.visibilityState === "hidden") return;
  state.refreshing = true;
  try {
    const due = Object.keys(EVERY).filter((name) => state.tick % EVERY[name] === 0);
    state.tick += 1;
    await refresh(due);
  } finally {
    state.refreshing = false;
  }
}

function everySecond() {
  const now = Date.now();
  for (const card of state.cards.values()) updateCountdown(card, now);
}

// Forget everything shown for the previous key: another key may belong to another org.
function resetView() {
  state.generation += 1;
  for (const card of state.cards.values()) card.node.remove();
  state.cards.clear();
  state.history = { agent: null, tokens: [null], next: null };
  state.events = { tokens: [null], next: null };
  state.tick = 0;
  document.title = "FlowLink dashboard";
}

function start(key) {
  resetView();
  state.key = key;
  $("main").hidden = false;
  showAlert("");
  showStatus("Signed in with key " + key.slice(0, 12) + "…");
  clearInterval(state.timer);
  state.timer = setInterval(tick, REFRESH_MS);
  tick();
}

function signOut(message) {
  clearInterval(state.timer);
  state.timer = null;
  state.key = null;
  sessionStorage.removeItem(KEY_STORAGE);
  resetView();
  $("main").hidden = true;
  showStatus("No key in use.");
  showAlert(message || "");
  $("api-key").focus();
}

function page(section, direction) {
  const view = state[section];
  if (direction === "older" && view.next) view.tokens.push(view.next);
  if (direction === "newest") view.tokens = [null];
  refresh([section]);
}

function init() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("api-key");
    const key = input.value.trim();
    input.value = "";
    if (!key) return showAlert("Paste an API key first.");
    sessionStorage.setItem(KEY_STORAGE, key);
    start(key);
  });
  $("forget-key").addEventListener("click", () => signOut(""));
  $("history-agent").addEventListener("change", (event) => {
    state.history = { agent: event.target.value, tokens: [null], next: null };
    refresh(["history"]);
  });
  $("history-older").addEventListener("click", () => page("history", "older"));
  $("history-newest").addEventListener("click", () => page("history", "newest"));
  $("events-older").addEventListener("click", () => page("events", "older"));
  $("events-newest").addEventListener("click", () => page("events", "newest"));
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && state.key) tick();
  });
  setInterval(everySecond, 1000);
  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved) start(saved);
  else showStatus("No key in use.");
}

if (typeof module === "object" && module.exports) {
  module.exports = {
    API, buildUrl, requestFor, decisionBody, describeError, visibleText, shorten, formatCountdown,
    formatAgo, formatTime, approvalProgress, scoreLevel, chainBadge, attestationBadges, describeActor,
    summarizeFields,
  };
} else if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", init);
} else {
  init();
}
