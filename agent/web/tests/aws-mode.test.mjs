// The web chat page's AWS mode (agent/web/aws.js), without AWS: Debian's
// headless Chromium (driven by playwright-core) opens the page from a local
// server that plays CloudFront (agent/web/ as deployed, a config.json, the
// deployment's CSP), next to local stand-ins for the two AWS endpoints the
// page talks to, each speaking the real wire format:
//
// - the Cognito hosted UI: /oauth2/authorize (a sign-in form), /oauth2/token
//   (authorization code + PKCE `code_verifier` -> id/access/refresh tokens,
//   RFC 6749 errors), /logout;
// - API Gateway's WebSocket API: refuses the handshake (403) unless
//   `?token=` is a token the stand-in issued, then answers the way the chat
//   Lambda does (chat-lambda/src/message.rs in, outbound.rs out).
//
// And the page's local mode (no config.json: the agent's own /ws and
// /api/status) still works. Everything listens on 127.0.0.1.
// Run: npm test (in agent/web/tests). Screenshots: artifacts/ (gitignored).

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { launch as launchBrowser } from "./browser.mjs";
import { WebSocketServer } from "ws";

const HERE = dirname(fileURLToPath(import.meta.url));
const WEB = join(HERE, "..");
const ARTIFACTS = join(HERE, "artifacts");
const WAIT = 15_000;
const CLIENT_ID = "4example0client0id0abcdefgh";
const USER = { email: "alice@example.com", password: "Choose-a-l0ng-one!", sub: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0" };

const b64url = (buf) => Buffer.from(buf).toString("base64url");
const s256 = (verifier) => b64url(createHash("sha256").update(verifier).digest());

function listen(server) {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server.address().port)));
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c) => (body += c));
    req.on("end", () => resolve(body));
    req.on("error", reject);
  });
}

// ------------------------------------------------------------ Cognito hosted UI

/** A JWT-shaped Cognito token (the stand-in API accepts it by value, as issued). */
function jwt(claims) {
  const header = b64url(JSON.stringify({ kid: "stand-in", alg: "RS256" }));
  return `${header}.${b64url(JSON.stringify(claims))}.${b64url(randomBytes(64))}`;
}

function cognitoStandIn({ callbackUrls, pageOrigin }) {
  const state = { authorize: [], token: [], logout: [], issued: new Set(), codes: new Map() };
  const oauthError = (res, status, error, cors = true) => {
    res.writeHead(status, {
      "content-type": "application/json;charset=UTF-8",
      ...(cors ? { "access-control-allow-origin": pageOrigin } : {}),
    });
    res.end(JSON.stringify({ error }));
  };
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    if (req.method === "GET" && url.pathname === "/oauth2/authorize") {
      const q = Object.fromEntries(url.searchParams);
      state.authorize.push(q);
      if (q.client_id !== CLIENT_ID || !callbackUrls.includes(q.redirect_uri)) {
        res.writeHead(400, { "content-type": "text/plain" });
        return res.end("redirect_mismatch");
      }
      // The hosted UI's sign-in form, carrying the request along.
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      return res.end(`<!doctype html><title>Sign in</title><link rel="icon" href="data:,">
<form method="post" action="/login">
<input type="hidden" name="request" value="${encodeURIComponent(JSON.stringify(q))}">
<label>Username <input name="username" id="username"></label>
<label>Password <input name="password" id="password" type="password"></label>
<button type="submit" id="signin">Sign in</button></form>`);
    }
    if (req.method === "POST" && url.pathname === "/login") {
      const form = new URLSearchParams(await readBody(req));
      const q = JSON.parse(decodeURIComponent(form.get("request")));
      if (form.get("username") !== USER.email || form.get("password") !== USER.password) {
        res.writeHead(200, { "content-type": "text/html" });
        return res.end("Incorrect username or password.");
      }
      const code = randomBytes(18).toString("hex");
      state.codes.set(code, { ...q, used: false });
      const back = new URL(q.redirect_uri);
      back.searchParams.set("code", code);
      if (q.state) back.searchParams.set("state", q.state);
      res.writeHead(302, { location: back.href });
      return res.end();
    }
    if (req.method === "POST" && url.pathname === "/oauth2/token") {
      if (!/^application\/x-www-form-urlencoded/.test(req.headers["content-type"] || "")) {
        return oauthError(res, 400, "invalid_request");
      }
      const form = Object.fromEntries(new URLSearchParams(await readBody(req)));
      state.token.push({ ...form, origin: req.headers.origin });
      if (form.grant_type !== "authorization_code") return oauthError(res, 400, "unsupported_grant_type");
      if (form.client_id !== CLIENT_ID) return oauthError(res, 400, "invalid_client");
      const grant = state.codes.get(form.code);
      if (!grant || grant.used || grant.redirect_uri !== form.redirect_uri) return oauthError(res, 400, "invalid_grant");
      grant.used = true;
      // PKCE: the verifier must hash to the challenge sent to /oauth2/authorize.
      if (grant.code_challenge_method !== "S256" || !form.code_verifier || s256(form.code_verifier) !== grant.code_challenge) {
        return oauthError(res, 400, "invalid_grant");
      }
      const now = Math.floor(Date.now() / 1000);
      const iss = "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_StandIn";
      const common = { sub: USER.sub, iss, auth_time: now, iat: now, exp: now + 3600 };
      const idToken = jwt({ ...common, aud: CLIENT_ID, token_use: "id", email: USER.email, email_verified: true });
      const accessToken = jwt({ ...common, client_id: CLIENT_ID, token_use: "access", scope: grant.scope });
      state.issued.add(idToken).add(accessToken);
      state.idToken = idToken;
      state.accessToken = accessToken;
      res.writeHead(200, { "content-type": "application/json;charset=UTF-8", "access-control-allow-origin": pageOrigin });
      return res.end(
        JSON.stringify({
          id_token: idToken,
          access_token: accessToken,
          refresh_token: b64url(randomBytes(96)),
          expires_in: 3600,
          token_type: "Bearer",
        }),
      );
    }
    if (req.method === "GET" && url.pathname === "/logout") {
      const q = Object.fromEntries(url.searchParams);
      state.logout.push(q);
      if (q.client_id !== CLIENT_ID || !callbackUrls.includes(q.logout_uri)) {
        res.writeHead(400);
        return res.end("invalid logout_uri");
      }
      res.writeHead(302, { location: q.logout_uri });
      return res.end();
    }
    res.writeHead(404);
    res.end();
  });
  return { server, state };
}

// ------------------------------------------------------------ API Gateway + chat Lambda

/** The chat Lambda's checks of a client message (chat-lambda/src/message.rs). */
function parseChatMessage(text) {
  let m;
  try {
    m = JSON.parse(text);
  } catch {
    return { error: "message is not valid JSON" };
  }
  const id = /^[A-Za-z0-9_.:-]{1,128}$/;
  if (typeof m?.session_id !== "string" || !id.test(m.session_id)) return { error: "`session_id` must be a non-empty string" };
  if (m.type === "approve") return { approve: m, sessionId: m.session_id };
  if (m.type !== undefined && m.type !== "chat") return { error: '`type` must be "chat" (the default) or "approve"' };
  if (typeof m.input?.prompt !== "string" || !m.input.prompt.trim()) return { error: "`input.prompt` must be a non-empty string" };
  return { prompt: m.input.prompt, sessionId: m.session_id, raw: m };
}

/** What the chat Lambda relays for one paid image: the agent's events, then `complete`. */
function paidImageTurn(prompt, sessionId, imageUrl) {
  const receipt = {
    request_id: "req-lighthouse-1",
    amount: "0.04",
    asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    network: "base-sepolia",
    pay_to: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    payer: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    transaction: "0x" + "ab".repeat(32),
    transaction_url: "https://sepolia.basescan.org/tx/0x" + "ab".repeat(32),
    resource: "https://gateway.example/generate",
  };
  const answer = [`Here is your image: ${imageUrl}`, `\nPaid 0.04 USDC `, `(transaction: ${receipt.transaction_url}).`];
  return [
    { type: "processing" },
    { type: "text", delta: "I'll generate that image " },
    { type: "text", delta: "for you." },
    { type: "tool_start", id: "tool-1", name: "generate_image", input: { prompt } },
    { type: "payment", receipt },
    { type: "image", id: "img-1", url: imageUrl },
    { type: "tool_end", id: "tool-1", name: "generate_image", status: "success", summary: "paid 0.04 USDC; image img-1" },
    // API Gateway's own frame on a turn longer than 29 s (cdk/README.md): no `type`.
    { message: "Endpoint request timed out", connectionId: "stand-in", requestId: "stand-in" },
    ...answer.map((delta) => ({ type: "text", delta })),
    {
      type: "complete",
      sessionId,
      response: {
        output: {
          message: { role: "assistant", content: [{ text: answer.join("") }] },
          images: { "img-1": imageUrl },
          payments: [receipt],
          session_id: "chat-" + "0".repeat(64),
          timestamp: new Date().toISOString(),
          model: "stand-in",
        },
      },
    },
  ];
}

function apiGatewayStandIn({ tokens, imageUrl }) {
  const state = { handshakes: [], messages: [] };
  const server = http.createServer((_req, res) => {
    res.writeHead(426);
    res.end();
  });
  const wss = new WebSocketServer({
    server,
    verifyClient: (info, done) => {
      const url = new URL(info.req.url, "http://127.0.0.1");
      const token = url.searchParams.get("token");
      const ok = url.pathname === "/prod" && tokens().has(token);
      state.handshakes.push({ path: url.pathname, token, ok, origin: info.origin });
      done(ok, ok ? undefined : 403);
    },
  });
  wss.on("connection", (socket) => {
    socket.on("message", async (data) => {
      const text = data.toString();
      state.messages.push(JSON.parse(text));
      const m = parseChatMessage(text);
      if (m.error) return socket.send(JSON.stringify({ type: "error", message: `${m.error} (request id r-1)`, requestId: "r-1" }));
      for (const frame of paidImageTurn(m.prompt || "approval", m.sessionId, imageUrl())) {
        socket.send(JSON.stringify(frame));
        await new Promise((r) => setTimeout(r, 40)); // streamed, not one burst
      }
    });
  });
  return { server, state };
}

// ------------------------------------------------------------ the page's host

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8" };

/**
 * Serves agent/web/ the way CloudFront does after the CDK deploy
 * (index.html at /, the rest under /assets/, the CSP of
 * cdk/lib/chat-site.ts), plus `/config.json` when `config()` gives one,
 * and a test image. Without a config it plays the agent instead: 404 for
 * /config.json, /api/status and an agent-protocol /ws.
 */
function pageHost({ config, connectSrc }) {
  const state = { requests: [], wsUrls: [], wsMessages: [] };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    state.requests.push(req.url);
    const csp = [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' data: https:",
      `connect-src 'self' ${connectSrc()}`,
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join("; ");
    const send = (status, type, body) => {
      res.writeHead(status, { "content-type": type, "content-security-policy": csp, "cache-control": "no-cache" });
      res.end(body);
    };
    const file = url.pathname === "/" ? "index.html" : url.pathname.match(/^\/assets\/([a-z]+\.(?:js|css))$/)?.[1];
    if (file && file !== "tests") {
      return send(200, TYPES[file.slice(file.lastIndexOf("."))], readFileSync(join(WEB, file)));
    }
    if (url.pathname === "/config.json") {
      const c = config();
      return c ? send(200, "application/json", JSON.stringify(c)) : send(404, "application/json", '{"error":"not found"}');
    }
    if (url.pathname === "/images/lighthouse.svg") {
      return send(
        200,
        "image/svg+xml",
        `<svg xmlns="http://www.w3.org/2000/svg" width="1024" height="1024"><rect width="1024" height="1024" fill="#1d3557"/>` +
          `<rect x="472" y="300" width="80" height="500" fill="#f1faee"/><polygon points="512,180 452,300 572,300" fill="#e63946"/></svg>`,
      );
    }
    if (!config() && url.pathname === "/api/status") {
      return send(200, "application/json", JSON.stringify({
        session_id: url.searchParams.get("session_id"), budget: "1.00", spent: "0.00", remaining: "1.00",
        auto_approve_max: "0.10", wallet: { address: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", network: "base-sepolia", usdc: "1000.00" },
      }));
    }
    send(404, "text/plain", "not found");
  });
  // Local mode: the agent's own /ws (no token).
  const wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", (req, socket, head) => {
    state.wsUrls.push(req.url);
    if (config() || new URL(req.url, "http://127.0.0.1").pathname !== "/ws") return socket.destroy();
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on("message", (d) => state.wsMessages.push(JSON.parse(d.toString())));
    });
  });
  return { server, state };
}

// ------------------------------------------------------------ the browser

const launch = () => launchBrowser("web-chat-aws");

/** Every console line, page error and request URL the browser produced. */
function watch(page) {
  const seen = { console: [], errors: [], requests: [] };
  page.on("console", (m) => seen.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => seen.errors.push(String(e.stack || e)));
  page.on("request", (r) => seen.requests.push(r.url()));
  return seen;
}

async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

const connected = (page) =>
  page.waitForFunction(() => document.querySelector("#conn").dataset.state === "connected", null, { timeout: WAIT });

// ------------------------------------------------------------ tests

describe("the page on AWS (config.json present)", () => {
  let servers = [];
  let browser;
  let cognito;
  let api;
  let host;
  let pageUrl;
  let config;

  before(async () => {
    let pagePort = 0;
    let cognitoPort = 0;
    let apiPort = 0;
    host = pageHost({
      config: () => config,
      connectSrc: () => `ws://127.0.0.1:${apiPort} http://127.0.0.1:${cognitoPort}`,
    });
    pagePort = await listen(host.server);
    pageUrl = `http://127.0.0.1:${pagePort}/`;
    cognito = cognitoStandIn({ callbackUrls: ["http://localhost:8080/", pageUrl], pageOrigin: `http://127.0.0.1:${pagePort}` });
    cognitoPort = await listen(cognito.server);
    api = apiGatewayStandIn({ tokens: () => cognito.state.issued, imageUrl: () => `${pageUrl}images/lighthouse.svg` });
    apiPort = await listen(api.server);
    servers = [host.server, cognito.server, api.server];
    // What cdk/lib/chat-stack.ts deploys (the stage URL, pool, client, hosted UI).
    config = {
      region: "us-west-2",
      webSocketUrl: `ws://127.0.0.1:${apiPort}/prod`,
      userPoolId: "us-west-2_StandIn",
      userPoolClientId: CLIENT_ID,
      cognitoDomain: `http://127.0.0.1:${cognitoPort}`,
      scopes: "openid email",
    };
    browser = await launch();
  });

  after(async () => {
    await browser?.context.close();
    if (browser) rmSync(browser.profile, { recursive: true, force: true });
    for (const s of servers) s.closeAllConnections?.(), s.close();
  });

  it("signs in with the code flow and PKCE, connects with the token and shows a streamed paid image", async () => {
    const page = browser.context.pages()[0] || (await browser.context.newPage());
    const seen = watch(page);

    // 1. Not signed in: straight to the hosted UI, with an S256 challenge.
    await page.goto(pageUrl);
    await page.waitForURL((u) => u.pathname === "/oauth2/authorize", { timeout: WAIT });
    assert.equal(cognito.state.authorize.length, 1);
    const auth = cognito.state.authorize[0];
    assert.equal(auth.response_type, "code");
    assert.equal(auth.client_id, CLIENT_ID);
    assert.equal(auth.redirect_uri, pageUrl);
    assert.equal(auth.scope, "openid email");
    assert.equal(auth.code_challenge_method, "S256");
    assert.match(auth.code_challenge, /^[A-Za-z0-9_-]{43}$/, "base64url SHA-256, no padding");
    assert.match(auth.state, /^[A-Za-z0-9_-]{16,}$/);
    assert.equal(api.state.handshakes.length, 0, "no connection before signing in");

    // 2. The user signs in; the page trades the code (and its verifier) for tokens.
    await page.locator("#username").fill(USER.email);
    await page.locator("#password").fill(USER.password);
    await page.locator("#signin").click();
    await page.waitForURL((u) => u.origin + "/" === pageUrl, { timeout: WAIT });
    await connected(page);
    assert.equal(cognito.state.token.length, 1);
    const exchange = cognito.state.token[0];
    assert.equal(exchange.grant_type, "authorization_code");
    assert.equal(exchange.redirect_uri, pageUrl);
    assert.equal(s256(exchange.code_verifier), auth.code_challenge, "the verifier behind the challenge");
    assert.ok(!("client_secret" in exchange), "a public client: no secret");
    assert.equal(new URL(page.url()).search, "", "the used code is gone from the address bar");

    // 3. The WebSocket API got the ID token in ?token= and nothing else.
    const ok = api.state.handshakes.filter((h) => h.ok);
    assert.equal(ok.length, 1, JSON.stringify(api.state.handshakes.map((h) => h.path)));
    assert.equal(ok[0].path, "/prod");
    assert.equal(ok[0].token, cognito.state.idToken);
    assert.equal(await page.locator("#account").innerText(), `Signed in as ${USER.email}`);
    assert.ok(await page.locator(".money").isHidden(), "no budget meter: AWS has no /api/status");
    assert.ok(!host.state.requests.some((r) => r.startsWith("/api/status")), "no /api/status asked for");

    // 4. A turn: the chat Lambda's frames are shown as they stream.
    await page.locator("#prompt").fill("Generate an image of a lighthouse");
    await page.locator("#prompt").press("Enter");
    await page.locator("li.assistant").first().waitFor({ timeout: WAIT });
    await page.waitForFunction(() => !document.querySelector("#send").disabled, null, { timeout: WAIT });
    assert.deepEqual(api.state.messages, [
      { input: { prompt: "Generate an image of a lighthouse" }, session_id: await page.locator("#session-id").innerText() },
    ]);
    const texts = await page.locator("li.assistant").allInnerTexts();
    assert.equal(texts[0], "I'll generate that image for you.", "deltas joined in one bubble");
    assert.match(texts.at(-1), /^Here is your image: .*\nPaid 0\.04 USDC \(transaction: https:\/\/sepolia\.basescan\.org\/tx\/0x(ab){32}\)\.$/);
    const tools = await page.$$eval("li.tool", (rows) => rows.map((r) => [r.dataset.tool, r.dataset.status]));
    assert.deepEqual(tools, [["generate_image", "success"]]);
    const paid = await page.$$eval("li.payment", (cards) => cards.map((c) => ({ amount: c.dataset.amount, href: c.querySelector("a[data-tx]")?.href })));
    assert.deepEqual(paid, [{ amount: "0.04", href: "https://sepolia.basescan.org/tx/0x" + "ab".repeat(32) }]);
    await page.waitForFunction(() => {
      const img = document.querySelector("li.image img");
      return img && img.complete && img.naturalWidth === 1024;
    }, null, { timeout: WAIT });
    assert.equal(await page.locator("li.image").count(), 1);
    assert.equal(await page.locator("li.error").count(), 0);
    await page.locator("li.image").scrollIntoViewIfNeeded();
    await shot(page, "aws-mode-paid-image");

    // 5. A reload keeps the sign-in (this tab's sessionStorage) and the session.
    const session = await page.locator("#session-id").innerText();
    await page.reload();
    await connected(page);
    assert.equal(cognito.state.authorize.length, 1, "no second trip to the hosted UI");
    assert.equal(await page.locator("#session-id").innerText(), session);

    // 6. The tokens never reach the console, the page's text or any request but the handshake.
    const tokens = [cognito.state.idToken, cognito.state.accessToken];
    const logged = [...seen.console, ...seen.errors].join("\n");
    for (const t of tokens) {
      assert.ok(!logged.includes(t) && !logged.includes(t.split(".")[1]), "a token in the console");
      assert.ok(!(await page.locator("body").innerText()).includes(t.split(".")[1]), "a token on the page");
      assert.ok(!seen.requests.some((u) => u.includes(t.split(".")[2])), "a token in an HTTP request URL");
      assert.ok(!host.state.requests.some((u) => u.includes(t.split(".")[2])), "a token sent to the page's host");
    }
    assert.deepEqual(seen.errors, [], "no script errors");
    assert.deepEqual(seen.console.filter((l) => l.startsWith("error")), [], "no console errors");
    assert.ok(seen.requests.every((u) => new URL(u).hostname === "127.0.0.1" || u.startsWith("data:")), "loopback only");

    // 7. Sign out: the hosted UI's /logout, back here, and signed out.
    await page.locator("#sign-out").click();
    await page.waitForURL((u) => u.pathname === "/oauth2/authorize", { timeout: WAIT });
    assert.deepEqual(cognito.state.logout, [{ client_id: CLIENT_ID, logout_uri: pageUrl }]);
    assert.equal(cognito.state.authorize.length, 2, "signed out: asked to sign in again");
  });

  it("refuses a sign-in answer it did not ask for, and does not connect", async () => {
    const page = await browser.context.newPage();
    const seen = watch(page);
    const handshakes = api.state.handshakes.length;
    const exchanges = cognito.state.token.length;
    await page.goto(`${pageUrl}?code=forged&state=not-ours`);
    await page.locator("#sign-in").waitFor({ timeout: WAIT });
    assert.match(await page.locator("#account").innerText(), /does not belong to this page's request/);
    assert.equal(await page.locator("#conn").getAttribute("data-state"), "disconnected");
    assert.match(await page.locator("#conn").innerText(), /^Not connected/);
    assert.equal(cognito.state.token.length, exchanges, "the forged code was not exchanged");
    assert.equal(api.state.handshakes.length, handshakes, "no connection tried");
    assert.equal(new URL(page.url()).search, "");
    assert.deepEqual(seen.errors, []);
    await shot(page, "aws-mode-forged-answer");
    await page.close();
  });
});

describe("the page served by the agent (no config.json)", () => {
  let browser;
  let host;

  before(async () => {
    host = pageHost({ config: () => null, connectSrc: () => "" });
    await listen(host.server);
    browser = await launch();
  });

  after(async () => {
    await browser?.context.close();
    if (browser) rmSync(browser.profile, { recursive: true, force: true });
    host.server.closeAllConnections?.();
    host.server.close();
  });

  it("connects to the agent's own /ws without a token and reads /api/status", async () => {
    const page = browser.context.pages()[0] || (await browser.context.newPage());
    const seen = watch(page);
    const url = `http://127.0.0.1:${host.server.address().port}/`;
    await page.goto(url);
    await connected(page);
    assert.equal(page.url(), url, "no sign-in");
    assert.deepEqual(host.state.wsUrls, ["/ws"]);
    await page.waitForFunction(() => document.querySelector("#wallet-usdc").textContent === "1000.00", null, { timeout: WAIT });
    assert.ok(await page.locator(".money").isVisible());
    assert.equal(await page.locator("#account").count(), 0);
    assert.equal(await page.locator("#sign-out").count(), 0);
    await page.locator("#prompt").fill("hello");
    await page.locator("#prompt").press("Enter");
    await page.waitForFunction(() => document.querySelectorAll("li.user").length === 1, null, { timeout: WAIT });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(host.state.wsMessages[0].input.prompt, "hello");
    assert.deepEqual(seen.errors, []);
  });
});
