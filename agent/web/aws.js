// AWS mode of the web chat page (loaded before app.js).
//
// The CDK app deploys this page to S3 + CloudFront with a /config.json next
// to it (cdk/lib/chat-site.ts): the WebSocket API's URL, the Cognito user
// pool's browser app client and its hosted sign-in domain. When that file is
// there, the page signs the user in and talks to the WebSocket API through
// the chat Lambda; when it is not (404: the agent serving the page locally),
// nothing here runs and app.js uses the agent's own /ws.
//
// Sign-in is OAuth 2.0 authorization code with PKCE (RFC 7636, S256) against
// the Cognito hosted UI, in plain JS:
//   1. no token: keep a random verifier and state in sessionStorage, go to
//      {cognitoDomain}/oauth2/authorize?...&code_challenge=B64URL(SHA256(verifier))
//   2. back at this page with ?code=&state=: check the state, POST the code
//      and the verifier to {cognitoDomain}/oauth2/token, keep the ID token
//   3. open wss://{api}/{stage}?token={ID token}: browsers cannot set headers
//      on a WebSocket, so the $connect authorizer (chat-authorizer) reads
//      the token from the query string.
// The ID token stays in this tab (sessionStorage, for reloads) and is never
// logged or shown. When it is about to expire the user signs in again (the
// hosted UI remembers them for a while, so usually without typing anything).
//
// app.js asks window.chatBackend (a promise: null locally, else
// {wsUrl()}) where to connect and with what token.
"use strict";

window.chatBackend = (() => {
  const KEY = {
    token: "x402-agent.id-token",
    verifier: "x402-agent.pkce-verifier",
    state: "x402-agent.oauth-state",
  };
  // Sign in again this long before the token expires (a turn can take minutes).
  const EXPIRY_MARGIN_MS = 5 * 60 * 1000;

  let config = null;
  let failure = null; // why sign-in failed: shown, and no connection is tried

  const b64url = (bytes) =>
    btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const random = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));
  const redirectUri = () => location.origin + "/";

  async function challengeOf(verifier) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    return b64url(new Uint8Array(digest));
  }

  // The token's claims, for its expiry and the "signed in as" line. Read
  // only: the WebSocket API's authorizer is what verifies it.
  function claims(jwt) {
    try {
      const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
    } catch {
      return {};
    }
  }

  function validToken() {
    const token = sessionStorage.getItem(KEY.token);
    if (!token) return null;
    const exp = Number(claims(token).exp) * 1000;
    if (!(exp > Date.now() + EXPIRY_MARGIN_MS)) {
      sessionStorage.removeItem(KEY.token);
      return null;
    }
    return token;
  }

  // Step 1: off to the hosted UI. Resolves to null: the page is leaving.
  async function signIn() {
    const verifier = random(32); // 43 characters, RFC 7636's minimum
    const state = random(16);
    sessionStorage.setItem(KEY.verifier, verifier);
    sessionStorage.setItem(KEY.state, state);
    const q = new URLSearchParams({
      response_type: "code",
      client_id: config.userPoolClientId,
      redirect_uri: redirectUri(),
      scope: config.scopes || "openid email",
      state,
      code_challenge: await challengeOf(verifier),
      code_challenge_method: "S256",
    });
    location.assign(config.cognitoDomain + "/oauth2/authorize?" + q);
    return null;
  }

  // Step 2: the hosted UI sent the browser back with ?code= (or ?error=).
  async function finishSignIn(params) {
    const state = sessionStorage.getItem(KEY.state);
    const verifier = sessionStorage.getItem(KEY.verifier);
    sessionStorage.removeItem(KEY.state);
    sessionStorage.removeItem(KEY.verifier);
    // The code is single-use: keep it out of the address bar and history.
    history.replaceState(null, "", location.pathname);
    // An old answer (Back into a used callback URL) while signed in: ignore it.
    if (!state && validToken()) return;
    if (params.has("error")) {
      throw new Error("sign-in failed: " + (params.get("error_description") || params.get("error")));
    }
    if (!state || !verifier || params.get("state") !== state) {
      throw new Error("the sign-in answer does not belong to this page's request");
    }
    const r = await fetch(config.cognitoDomain + "/oauth2/token", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        client_id: config.userPoolClientId,
        code: params.get("code") || "",
        redirect_uri: redirectUri(),
        code_verifier: verifier,
      }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok || typeof body.id_token !== "string") {
      throw new Error("sign-in failed: " + (body.error || "HTTP " + r.status));
    }
    sessionStorage.setItem(KEY.token, body.id_token);
  }

  function signOut() {
    sessionStorage.removeItem(KEY.token);
    const q = new URLSearchParams({ client_id: config.userPoolClientId, logout_uri: redirectUri() });
    location.assign(config.cognitoDomain + "/logout?" + q);
  }

  // Step 3: where app.js connects. null = signing in (the page navigates away).
  async function wsUrl() {
    if (failure) throw new Error("not signed in"); // the account line says why
    const token = validToken();
    if (!token) return signIn();
    const sep = config.webSocketUrl.includes("?") ? "&" : "?";
    return config.webSocketUrl + sep + "token=" + encodeURIComponent(token);
  }

  // The header line: who is signed in, Sign out (or why not, and Sign in).
  // The budget section reads the agent's /api/status, which only a local
  // agent serves: on AWS the budget is the deployment's setting.
  function showAccount() {
    const money = document.querySelector(".money");
    if (money) {
      money.hidden = true;
      money.style.display = "none";
      const note = document.createElement("p");
      note.className = "hint";
      note.id = "aws-budget-note";
      note.textContent = "Session budget and auto-approve limit: this deployment's settings.";
      money.after(note);
    }
    const top = document.querySelector("header.top");
    const line = document.createElement("p");
    line.id = "account";
    line.className = "hint";
    const button = document.createElement("button");
    button.type = "button";
    if (failure) {
      line.textContent = "Not signed in: " + failure.message + ".";
      if (!config) return top.append(line); // nothing to sign in with
      button.id = "sign-in";
      button.textContent = "Sign in";
      button.addEventListener("click", () => {
        failure = null;
        signIn();
      });
    } else {
      const who = claims(sessionStorage.getItem(KEY.token) || "");
      line.textContent = who.email ? "Signed in as " + who.email : "";
      button.id = "sign-out";
      button.textContent = "Sign out";
      button.addEventListener("click", signOut);
    }
    top.append(line, button);
  }

  async function start() {
    let r;
    try {
      r = await fetch("/config.json", { cache: "no-store" });
    } catch {
      return null; // no server to ask: nothing to configure
    }
    if (r.status === 404) return null;
    try {
      if (!r.ok) throw new Error("this page's config.json could not be read (HTTP " + r.status + ")");
      const c = await r.json();
      for (const k of ["webSocketUrl", "userPoolClientId", "cognitoDomain"]) {
        if (typeof c[k] !== "string" || !c[k]) throw new Error("this page's config.json has no " + k);
      }
      config = c;
      const params = new URLSearchParams(location.search);
      if (params.has("code") || params.has("error")) await finishSignIn(params);
    } catch (e) {
      failure = e instanceof Error ? e : new Error(String(e));
    }
    showAccount();
    return { wsUrl };
  }

  return start();
})();
