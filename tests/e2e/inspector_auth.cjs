// Preload for the MCP Inspector CLI (0.15.0 is the newest that runs on Node 20 here), whose
// CLI has no option to send an HTTP header. Loaded with
//   NODE_OPTIONS="--require /path/to/inspector_auth.cjs" FLOWLINK_BEARER=<key>
// it adds `Authorization: Bearer <key>` to every fetch the Inspector makes, exactly what an
// MCP client configured with that header sends. It changes nothing else.
"use strict";
const bearer = process.env.FLOWLINK_BEARER;
if (bearer && typeof globalThis.fetch === "function") {
  const originalFetch = globalThis.fetch;
  globalThis.fetch = function fetchWithFlowlinkKey(input, init = {}) {
    const headers = new Headers(init.headers || (input instanceof Request ? input.headers : undefined));
    headers.set("Authorization", `Bearer ${bearer}`);
    return originalFetch(input, { ...init, headers });
  };
}
