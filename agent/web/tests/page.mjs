// Drives the agent's web chat page in Debian's headless Chromium through
// playwright-core, one scenario per run. Run by the Rust test
// `agent/tests/web` (which starts the agent, restarts it when asked and
// checks the chain); not meant to be run alone.
//
// env: AGENT_URL, SCENARIO, ARTIFACTS (screenshot dir), BUYER_ADDRESS
// stdout: JSON lines. {"step": "restart-agent"} asks the harness to restart
// the agent (then the page must reconnect on its own); the last line is
// {"result": {...}} with what the page showed, for the harness to check on chain.
// Exit status 0 = every assertion on the page held.

import assert from "node:assert/strict";
import { rmSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { launch as launchBrowser } from "./browser.mjs";

const AGENT_URL = process.env.AGENT_URL;
const SCENARIO = process.env.SCENARIO;
const ARTIFACTS = process.env.ARTIFACTS;
const BUYER = process.env.BUYER_ADDRESS || "";
const WAIT = 90_000;

const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const launch = () => launchBrowser("web-chat");

async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${SCENARIO}-${name}.png`);
  await page.screenshot({ path, fullPage: true });
  say({ screenshot: path });
}

const connState = (page) => page.locator("#conn").getAttribute("data-state");

async function waitConnected(page) {
  await page.waitForFunction(() => document.querySelector("#conn").dataset.state === "connected", null, { timeout: WAIT });
}

/// Sends a prompt the way a person does: type, press Enter.
async function ask(page, text) {
  const before = await page.locator("li.user").count();
  await page.locator("#prompt").fill(text);
  await page.locator("#prompt").press("Enter");
  // The message is shown (and Send disabled until the turn ends) at once.
  await page.waitForFunction((n) => document.querySelectorAll("li.user").length > n, before, { timeout: WAIT });
}

async function turnDone(page) {
  await page.waitForFunction(() => !document.querySelector("#send").disabled, null, { timeout: WAIT });
}

/// The paid images of the page, once loaded: {src, naturalWidth}.
async function loadedImages(page, count) {
  await page.waitForFunction(
    (n) => {
      const imgs = [...document.querySelectorAll("li.image img")];
      return imgs.length >= n && imgs.every((i) => i.complete && i.naturalWidth > 0);
    },
    count,
    { timeout: WAIT },
  );
  return page.$$eval("li.image img", (imgs) => imgs.map((i) => ({ src: i.src, naturalWidth: i.naturalWidth })));
}

async function payments(page) {
  return page.$$eval("li.payment", (cards) =>
    cards.map((c) => {
      const a = c.querySelector("a[data-tx]");
      return { tx: c.dataset.tx, amount: c.dataset.amount, href: a ? a.href : null, linkText: a ? a.textContent : null };
    }),
  );
}

const text = (page, sel) => page.locator(sel).innerText();

async function budgetShows(page, spent) {
  await page.waitForFunction((s) => document.querySelector("#spent").textContent === s, spent, { timeout: WAIT });
}

// ------------------------------------------------------------ scenarios

const scenarios = {
  /// The original sample's conversation: wallet details, then a paid image.
  async conversation(page) {
    await ask(page, "What are my wallet details?");
    await turnDone(page);
    const answer = await page.locator("li.assistant").last().innerText();
    assert.match(answer, new RegExp(BUYER, "i"), "the answer names the wallet");
    await page.waitForFunction((b) => document.querySelector("#wallet-address").textContent.toLowerCase() === b.toLowerCase(), BUYER, { timeout: WAIT });

    await ask(page, "Generate an image of a futuristic city at sunset");
    await turnDone(page);
    const imgs = await loadedImages(page, 1);
    assert.equal(imgs.length, 1, "one image");
    assert.equal(imgs[0].naturalWidth, 1024, "the paid image is rendered at its real size");
    assert.match(imgs[0].src, /^http:\/\/127\.0\.0\.1:\d+\//, "a URL the browser can load");
    const paid = await payments(page);
    assert.equal(paid.length, 1, "one payment card");
    assert.equal(paid[0].amount, "0.04");
    assert.ok(paid[0].href && paid[0].href.endsWith(paid[0].tx), "the card links to the transaction");
    await budgetShows(page, "0.04");
    const tools = await page.$$eval("li.tool", (rows) => rows.map((r) => [r.dataset.tool, r.dataset.status]));
    assert.deepEqual(tools, [["check_balance", "success"], ["generate_image", "success"]], "tool progress shown");
    await page.locator("li.image").scrollIntoViewIfNeeded();
    await shot(page, "paid-image");

    // Phone-sized: nothing wider than the screen, the image still there.
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling on a phone (${overflow}px too wide)`);
    await shot(page, "phone");

    // Keyboard: the composer, the budget field and New session are reachable and labelled.
    for (const sel of ["#prompt", "#budget", "#new-session", "#send"]) {
      const name = await page.locator(sel).evaluate((e) => (e.labels && e.labels[0] ? e.labels[0].textContent : e.textContent || e.getAttribute("aria-label")).trim());
      assert.ok(name.length > 0, `${sel} has a label`);
    }
    return { tx: paid[0].tx, image: imgs[0].src, wallet_usdc: await text(page, "#wallet-usdc") };
  },

  /// A budget below the price: the page shows the refusal, nothing is paid.
  async over_budget(page) {
    await page.locator("#budget").fill("0.01");
    await page.locator("#budget").press("Tab");
    await ask(page, "Generate an image of a futuristic city at sunset");
    await turnDone(page);
    const card = page.locator("li.refusal[data-over-budget=true]");
    await card.waitFor({ timeout: WAIT });
    const shown = await card.innerText();
    assert.match(shown, /budget/i);
    assert.equal((await payments(page)).length, 0, "no payment card");
    assert.equal(await page.locator("li.image").count(), 0, "no image");
    await budgetShows(page, "0.00");
    assert.equal(await text(page, "#remaining"), "0.01");
    await shot(page, "refused");
    return { refusal: shown };
  },

  /// The agent restarts mid-session: the page shows it, reconnects on its
  /// own and the same session goes on (its spend carries over).
  async restart(page) {
    const session = await text(page, "#session-id");
    await ask(page, "Generate an image of a futuristic city at sunset");
    await turnDone(page);
    await loadedImages(page, 1);
    await budgetShows(page, "0.04");

    say({ step: "restart-agent" });
    await page.waitForFunction(() => document.querySelector("#conn").dataset.state !== "connected", null, { timeout: WAIT });
    const down = await connState(page);
    assert.ok(["disconnected", "reconnecting"].includes(down), `shown as ${down}`);
    await shot(page, "disconnected");
    await waitConnected(page);
    await page.locator("li.notice", { hasText: "Reconnected" }).waitFor({ timeout: WAIT });

    await ask(page, "Generate an image of a lighthouse");
    await turnDone(page);
    const imgs = await loadedImages(page, 2);
    assert.equal(imgs[1].naturalWidth, 1024);
    await budgetShows(page, "0.08");
    assert.equal(await text(page, "#session-id"), session, "the same session");
    const paid = await payments(page);
    assert.equal(paid.length, 2);
    await shot(page, "reconnected");
    return { txs: paid.map((p) => p.tx), session };
  },

  /// Above auto-approve: the approval card; Approve pays once.
  async approve(page) {
    await ask(page, "Generate an image of a futuristic city at sunset");
    const card = page.locator("li.approval");
    await card.waitFor({ timeout: WAIT });
    await shot(page, "approval");
    await card.getByRole("button", { name: /^Approve/ }).press("Enter");
    await turnDone(page);
    const imgs = await loadedImages(page, 1);
    assert.equal(imgs[0].naturalWidth, 1024);
    const paid = await payments(page);
    assert.equal(paid.length, 1);
    await shot(page, "approved");
    return { tx: paid[0].tx };
  },

  /// Above auto-approve: Decline pays nothing.
  async decline(page) {
    await ask(page, "Generate an image of a futuristic city at sunset");
    const card = page.locator("li.approval");
    await card.waitFor({ timeout: WAIT });
    await card.getByRole("button", { name: /^Decline/ }).click();
    await turnDone(page);
    assert.equal((await payments(page)).length, 0);
    assert.equal(await page.locator("li.image").count(), 0);
    await budgetShows(page, "0.00");
    await shot(page, "declined");
    return {};
  },
};

async function main() {
  const run = scenarios[SCENARIO];
  assert.ok(run, `unknown scenario ${SCENARIO}`);
  const { context, profile } = await launch();
  const problems = [];
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      // Failed loads are judged by URL below.
      if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(`console error: ${m.text()}`);
    });
    page.on("response", (r) => {
      // /config.json is absent on purpose: its 404 keeps the page in local mode (aws.js).
      if (r.status() >= 400 && !/\/(favicon\.ico|config\.json)$/.test(new URL(r.url()).pathname)) {
        problems.push(`${r.status()} for ${r.url()}`);
      }
    });
    await page.goto(AGENT_URL + "/");
    await waitConnected(page);
    let result;
    try {
      result = await run(page);
    } catch (e) {
      await shot(page, "failure").catch(() => {});
      throw e;
    }
    // A restart logs the failed reconnect attempts; anything else is a bug.
    const unexpected = problems.filter((p) => !/WebSocket connection|ERR_CONNECTION_REFUSED/.test(p));
    assert.deepEqual(unexpected, [], "no script errors in the page");
    say({ result });
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`${SCENARIO}: ${e.stack || e}\n`);
  process.exit(1);
});
