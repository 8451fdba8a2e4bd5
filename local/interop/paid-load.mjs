// Paid requests at a fixed concurrency, each paid with the official x402 v2
// client (@x402/fetch + @x402/evm), for the benchmarks: the same client
// pays our gateway and the official @x402/express seller.
//
//   node interop/paid-load.mjs <url> '<json body>' <concurrency> <requests> [warmup]
//   env: BUYER_PRIVATE_KEY
//
// `warmup` requests (default 2) run first, one at a time, and are not
// counted. Then `concurrency` workers share `requests` paid requests.
// Prints one JSON line:
//   {startedAtMs, wallMs, latenciesMs: [...], statuses: {"200": n}, settled: n, bodyBytes, errors}
// where `startedAtMs` (Unix ms) is when the counted requests began and
// `settled` counts responses carrying a PAYMENT-RESPONSE header, and
// `errors` holds the first few failures (status 0: the client threw).
import { wrapFetchWithPaymentFromConfig } from "@x402/fetch";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { privateKeyToAccount } from "viem/accounts";

const [url, body, concurrencyArg, requestsArg, warmupArg] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const requests = Number(requestsArg);
const warmup = Number(warmupArg ?? 2);
if (!url || !body || !(concurrency > 0) || !(requests > 0)) {
  console.error("usage: paid-load.mjs <url> <json body> <concurrency> <requests> [warmup]");
  process.exit(2);
}
const account = privateKeyToAccount(process.env.BUYER_PRIVATE_KEY);
const pay = wrapFetchWithPaymentFromConfig(fetch, {
  schemes: [{ network: "eip155:84532", client: new ExactEvmScheme(account) }],
});
const init = () => ({ method: "POST", headers: { "content-type": "application/json" }, body });

const statuses = {};
const latenciesMs = [];
let settled = 0;
let bodyBytes = 0;
const errors = [];

async function one(record) {
  const t = performance.now();
  let r;
  try {
    r = await pay(url, init());
  } catch (e) {
    if (!record) return;
    latenciesMs.push(performance.now() - t);
    statuses[0] = (statuses[0] ?? 0) + 1;
    if (errors.length < 3) errors.push(String(e?.message ?? e).slice(0, 300));
    return;
  }
  const buf = await r.arrayBuffer();
  const bytes = buf.byteLength;
  const ms = performance.now() - t;
  if (!record) return;
  latenciesMs.push(ms);
  statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  if (r.headers.get("PAYMENT-RESPONSE")) settled += 1;
  if (r.status !== 200 && errors.length < 3) {
    errors.push(`${r.status}: ${new TextDecoder().decode(buf).slice(0, 300)}`);
  }
  bodyBytes = Math.max(bodyBytes, bytes);
}

for (let i = 0; i < warmup; i++) await one(false);
let next = 0;
const startedAtMs = Date.now();
const started = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < requests) {
      next += 1;
      await one(true);
    }
  }),
);
const wallMs = performance.now() - started;
console.log(JSON.stringify({ startedAtMs, wallMs, latenciesMs, statuses, settled, bodyBytes, errors }));
