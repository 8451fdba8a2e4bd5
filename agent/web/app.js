// The web chat page: plain JS, no build step, served by the agent (src/web.rs).
//
// Talks to the agent's /ws in the WebSocket chat Lambda's protocol:
//   client -> {"input": {"prompt"}, "session_id", "session_budget_usdc"?}
//   client -> {"type": "approve", "request_id", "approved"}   (a quote above auto-approve)
//   server -> text | tool_start | tool_end | quote | payment | image | refusal (progress)
//   server -> complete {sessionId, response: {output}} | error {message} (end of a turn)
// and reads /api/status for the budget meter and the wallet line.
// Deployed on AWS, aws.js (loaded first) supplies the WebSocket API's URL and
// the user's token instead, and there is no /api/status (see wsUrl).
// Everything the agent sends is shown as text (textContent), never parsed as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const log = $("log");
  const conn = $("conn");
  const form = $("composer");
  const prompt = $("prompt");
  const send = $("send");
  const budgetInput = $("budget");
  const SESSION_KEY = "x402-agent.session";

  let ws = null;
  let everConnected = false;
  let retryDelay = 500;
  let inFlight = false; // a prompt or an approval sent and its turn not yet ended
  let pending = 0; // turns sent and not yet ended (the server runs them in order)
  let turn = null; // what the current turn has shown: {bubble, streamed, images:Set, txs:Set, refused}
  let sessionId = sessionStorage.getItem(SESSION_KEY) || newSessionId();

  function newSessionId() {
    // AgentCore session ids are at least 33 characters; getRandomValues
    // works outside secure contexts too.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    const id = "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem(SESSION_KEY, id);
    return id;
  }

  // ------------------------------------------------------------ rendering

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role") node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  function item(kind, ...children) {
    const li = el("li", { class: kind, "data-kind": kind }, ...children);
    log.append(li);
    li.scrollIntoView({ block: "end" });
    return li;
  }

  const isWebUrl = (u) => typeof u === "string" && /^https?:\/\//i.test(u);

  function link(href, text) {
    if (!isWebUrl(href)) return document.createTextNode(text || href || "");
    return el("a", { href, target: "_blank", rel: "noopener noreferrer" }, text || href);
  }

  // Text with http(s) URLs as links.
  function linkified(text) {
    const frag = document.createDocumentFragment();
    const re = /https?:\/\/[^\s<>"')]+/g;
    let last = 0;
    for (const m of text.matchAll(re)) {
      let url = m[0].replace(/[.,;:]+$/, "");
      frag.append(text.slice(last, m.index), link(url));
      last = m.index + url.length;
    }
    frag.append(text.slice(last));
    return frag;
  }

  function setText(node, text) {
    node.textContent = "";
    node.append(linkified(text));
    node.dataset.text = text;
  }

  function short(addr) {
    return typeof addr === "string" && addr.length > 14 ? addr.slice(0, 8) + "…" + addr.slice(-6) : String(addr ?? "");
  }

  function details(pairs) {
    const dl = el("dl");
    for (const [k, v] of pairs) {
      if (v === undefined || v === null || v === "") continue;
      dl.append(el("dt", {}, k), el("dd", {}, v));
    }
    return dl;
  }

  // ------------------------------------------------------------ connection

  function setConn(state, text) {
    conn.dataset.state = state;
    conn.textContent = text;
    send.disabled = state !== "connected" || inFlight;
  }

  // Where to connect and with what token: this agent's /ws, unless aws.js
  // found the page's config.json (window.chatBackend resolves to null
  // locally). null = not now (aws.js is sending the browser to sign in).
  const backend = Promise.resolve(window.chatBackend || null);

  async function wsUrl() {
    const aws = await backend;
    if (aws) return aws.wsUrl();
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  }

  async function connect() {
    setConn(everConnected ? "reconnecting" : "connecting", everConnected ? "Reconnecting…" : "Connecting…");
    let url;
    try {
      url = await wsUrl();
    } catch (e) {
      setConn("disconnected", "Not connected: " + (e.message || e));
      return;
    }
    if (!url) return;
    const socket = new WebSocket(url);
    ws = socket;
    socket.onopen = () => {
      retryDelay = 500;
      if (everConnected) item("notice", "Reconnected. Continuing session " + sessionId + ".");
      everConnected = true;
      setConn("connected", "Connected");
      refreshStatus();
    };
    socket.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      onMessage(msg);
    };
    socket.onclose = () => {
      if (ws !== socket) return;
      ws = null;
      if (inFlight) {
        pending = 1;
        item("notice-bad", "The connection dropped while the agent was working. It finishes the request anyway and keeps the result in this session; the budget below is refreshed when it reconnects.");
        endTurn();
      }
      const wait = retryDelay;
      retryDelay = Math.min(retryDelay * 2, 5000);
      setConn("disconnected", "Disconnected. Retrying in " + Math.ceil(wait / 1000) + " s…");
      setTimeout(connect, wait);
    };
  }

  // ------------------------------------------------------------ a turn

  function startTurn(text) {
    item("user", text);
    turn = newTurn();
    sent();
    const budget = budgetInput.value.trim();
    const msg = { input: { prompt: text }, session_id: sessionId };
    if (budget) msg.session_budget_usdc = budget;
    ws.send(JSON.stringify(msg));
  }

  function newTurn() {
    return { bubble: null, streamed: "", images: new Set(), txs: new Set(), refused: false, tools: new Map() };
  }

  function sent() {
    pending += 1;
    inFlight = true;
    send.disabled = true;
  }

  function endTurn() {
    pending = Math.max(0, pending - 1);
    inFlight = pending > 0;
    if (!inFlight) turn = null;
    send.disabled = !(ws && ws.readyState === WebSocket.OPEN);
    refreshStatus();
  }

  function onMessage(m) {
    if (!turn) turn = newTurn();
    switch (m.type) {
      case "text": onText(m.delta || ""); break;
      case "tool_start": onToolStart(m); break;
      case "tool_end": onToolEnd(m); break;
      case "quote": onQuote(m); break;
      case "payment": onPayment(m.receipt || {}); break;
      case "image": onImage(m.id, m.url); break;
      case "refusal": onRefusal(m); break;
      case "complete": onComplete(m); break;
      case "error": onError(m.message); break;
      default: break;
    }
  }

  function onText(delta) {
    if (!turn.bubble) turn.bubble = item("assistant");
    turn.streamed += delta;
    setText(turn.bubble, (turn.bubble.dataset.text || "") + delta);
  }

  function onToolStart(m) {
    turn.bubble = null; // text after a tool goes in a new bubble
    const row = item("tool", "Running " + m.name + "…");
    row.dataset.tool = m.name;
    row.dataset.status = "running";
    turn.tools.set(m.id, row);
  }

  function onToolEnd(m) {
    const row = turn.tools.get(m.id) || item("tool");
    row.dataset.tool = m.name;
    row.dataset.status = m.status;
    row.textContent = (m.status === "success" ? "✓ " : "✗ ") + m.name + ": " + (m.summary || m.status);
    // Without a refusal event, a budget refusal still gets its card.
    if (m.status === "error" && /budget/i.test(m.summary || "") && !turn.refused) {
      refusalCard({ rule: "session budget", message: m.summary });
    }
  }

  function onQuote(q) {
    const card = item("quote",
      el("h2", {}, q.needs_approval ? "Approval needed" : "Price quoted"),
      details([
        ["Amount", q.amount + " USDC"],
        ["Pay to", el("span", { class: "mono", title: q.pay_to }, q.pay_to)],
        ["Network", q.network],
        ["For", q.description],
        ["Expires", expires(q.expires_at)],
      ]));
    card.dataset.requestId = q.request_id;
    if (!q.needs_approval) return;
    card.classList.add("approval");
    card.dataset.kind = "approval";
    const approve = el("button", { type: "button", class: "primary", "aria-label": "Approve paying " + q.amount + " USDC" }, "Approve " + q.amount + " USDC");
    const decline = el("button", { type: "button", "aria-label": "Decline paying " + q.amount + " USDC" }, "Decline");
    const outcome = el("p", { role: "status" });
    const answer = (approved) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        outcome.textContent = "Not connected: your answer was not sent. Try again once reconnected.";
        return;
      }
      // The answer is data bound to this quote's request id; the agent runs
      // it as a turn of this session (pays on approval, nothing on decline).
      ws.send(JSON.stringify({ type: "approve", request_id: q.request_id, approved, session_id: sessionId }));
      sent();
      approve.disabled = true;
      decline.disabled = true;
      card.dataset.answer = approved ? "approved" : "declined";
      outcome.textContent = approved ? "Approved. Paying…" : "Declined. Nothing will be paid.";
    };
    approve.addEventListener("click", () => answer(true));
    decline.addEventListener("click", () => answer(false));
    card.append(el("div", { class: "actions" }, approve, decline), outcome);
    approve.focus();
  }

  function expires(v) {
    if (v === undefined || v === null || v === "") return null;
    const d = typeof v === "number" ? new Date(v * 1000) : new Date(v);
    return isNaN(d) ? String(v) : d.toLocaleTimeString();
  }

  function onPayment(r) {
    const key = r.transaction || r.request_id;
    if (turn.txs.has(key)) return;
    turn.txs.add(key);
    const tx = link(r.transaction_url, short(r.transaction));
    if (tx.dataset) tx.dataset.tx = r.transaction;
    const card = item("payment",
      el("h2", {}, "Paid " + r.amount + " USDC"),
      details([
        ["Payee", el("span", { class: "mono", title: r.pay_to }, r.pay_to)],
        ["Network", r.network],
        ["Transaction", tx],
      ]));
    card.dataset.tx = r.transaction || "";
    card.dataset.amount = r.amount;
    refreshStatus();
  }

  function onImage(id, url) {
    if (!url || turn.images.has(url)) return;
    turn.images.add(url);
    if (isWebUrl(url) || /^data:image\/png;/.test(url)) {
      const img = el("img", { src: url, alt: "Generated image " + id, loading: "lazy" });
      item("image", el("figure", {}, img, el("figcaption", {}, link(url, "Open image " + id))));
    } else {
      item("image", "Image " + id + " is stored at " + url + " (a browser cannot open this address).");
    }
  }

  function refusalCard(r) {
    turn.refused = true;
    const overBudget = /budget/i.test((r.rule || "") + " " + (r.message || ""));
    const card = item("refusal",
      el("h2", {}, overBudget ? "Over budget: payment refused" : "Payment refused"),
      details([
        ["Rule", r.rule],
        ["Amount", r.amount ? r.amount + " USDC" : null],
        ["Limit", r.limit ? r.limit + " USDC" : null],
      ]),
      el("p", {}, r.message || ""));
    card.dataset.rule = r.rule || "";
    if (overBudget) card.dataset.overBudget = "true";
  }

  function onRefusal(r) {
    // One card per refusal even if the tool's error arrives too.
    if (turn.refused) {
      const last = Array.from(log.querySelectorAll("li.refusal")).pop();
      if (last && !last.dataset.requestId && r.rule) last.remove();
    }
    refusalCard(r);
    const card = log.lastElementChild;
    if (r.request_id) card.dataset.requestId = r.request_id;
  }

  function onComplete(m) {
    const out = (m.response && m.response.output) || {};
    const text = out.message && out.message.content && out.message.content[0] ? out.message.content[0].text : "";
    if (text && !turn.streamed.includes(text)) {
      const bubble = turn.bubble || item("assistant");
      setText(bubble, text);
    }
    for (const p of out.payments || []) onPayment(p);
    for (const [id, url] of Object.entries(out.images || {})) onImage(id, url);
    if (m.sessionId && m.sessionId !== sessionId) sessionId = m.sessionId;
    endTurn();
  }

  function onError(message) {
    item("error", el("h2", {}, "The agent reported an error"), el("p", {}, message || "unknown error"));
    if (inFlight) endTurn();
  }

  // ------------------------------------------------------------ status

  async function refreshStatus() {
    if (await backend) return; // on AWS: no /api/status
    const q = new URLSearchParams({ session_id: sessionId });
    const b = budgetInput.value.trim();
    if (b) q.set("budget_usdc", b);
    try {
      const r = await fetch("/api/status?" + q, { cache: "no-store" });
      const s = await r.json();
      if (!r.ok) throw new Error(s.error || r.status);
      $("spent").textContent = s.spent;
      $("remaining").textContent = s.remaining;
      $("budget-total").textContent = s.budget;
      $("auto-approve").textContent = s.auto_approve_max;
      const meter = $("budget-meter");
      const total = parseFloat(s.budget);
      meter.max = total > 0 ? total : 1;
      meter.value = Math.min(parseFloat(s.spent), meter.max);
      meter.setAttribute("aria-valuetext", s.spent + " of " + s.budget + " USDC spent");
      if (s.wallet) {
        $("wallet-address").textContent = s.wallet.address;
        $("wallet-usdc").textContent = s.wallet.usdc;
        $("wallet-network").textContent = s.wallet.network;
      } else {
        $("wallet-usdc").textContent = "unknown (chain unreachable)";
      }
      budgetInput.setCustomValidity("");
    } catch (e) {
      budgetInput.setCustomValidity(String(e.message || e));
    }
  }

  // ------------------------------------------------------------ controls

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = prompt.value.trim();
    if (!text || inFlight || !ws || ws.readyState !== WebSocket.OPEN) return;
    prompt.value = "";
    startTurn(text);
  });

  prompt.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });

  budgetInput.addEventListener("change", refreshStatus);

  $("new-session").addEventListener("click", () => {
    sessionId = newSessionId();
    $("session-id").textContent = sessionId;
    log.textContent = "";
    turn = null;
    item("notice", "New session " + sessionId + ".");
    refreshStatus();
    prompt.focus();
  });

  $("session-id").textContent = sessionId;
  connect();
})();
