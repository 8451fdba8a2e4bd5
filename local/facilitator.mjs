#!/usr/bin/env node
// The official x402 facilitator (@x402/core + @x402/evm, pinned in
// package.json) as a small loopback HTTP service for the local stack.
//
//   POST /verify    {x402Version, paymentPayload, paymentRequirements} -> VerifyResponse
//   POST /settle    (same body)                                        -> SettleResponse
//   GET  /supported                                                    -> {kinds, extensions, signers}
//
// It registers the EVM `exact` scheme for x402 v2 (`eip155:84532`) and v1
// (`base-sepolia`) and settles with Anvil dev account #0 over RPC_URL.
// Failed verifications/settlements are answered with HTTP 200 and
// `isValid:false` / `success:false`, like the hosted facilitators; only a
// thrown error (bad request shape, RPC down) gives 400/500.
//
// Environment: RPC_URL (required), PORT (default 14021), HOST (127.0.0.1),
// FACILITATOR_PRIVATE_KEY (default: Anvil account #0), CHAIN_ID (84532).
import { createServer } from "node:http";

import { x402Facilitator } from "@x402/core/facilitator";
import { toFacilitatorEvmSigner } from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/facilitator";
import { ExactEvmSchemeV1 } from "@x402/evm/exact/v1/facilitator";
import { createWalletClient, defineChain, http, publicActions } from "viem";
import { privateKeyToAccount } from "viem/accounts";

// Anvil dev account #0 ("test test ... junk"): a public key, for local use only.
const ANVIL_ACCOUNT_0_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const V2_NETWORK = "eip155:84532";
const V1_NETWORK = "base-sepolia";
const MAX_BODY_BYTES = 1 << 20;

const rpcUrl = process.env.RPC_URL;
if (!rpcUrl) {
  console.error("facilitator: RPC_URL is required");
  process.exit(2);
}
const host = process.env.HOST ?? "127.0.0.1";
const port = Number(process.env.PORT ?? 14021);
const chainId = Number(process.env.CHAIN_ID ?? 84532);

const chain = defineChain({
  id: chainId,
  name: "Base Sepolia (local)",
  nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  rpcUrls: { default: { http: [rpcUrl] } },
  contracts: { multicall3: { address: "0xcA11bde05977b3631167028862bE2a173976CA11" } },
});

const account = privateKeyToAccount(process.env.FACILITATOR_PRIVATE_KEY ?? ANVIL_ACCOUNT_0_KEY);
// Anvil mines a transaction just after `eth_sendRawTransaction` answers, so a
// receipt is often missing at the first look: poll every 50 ms, not viem's
// 4 s default for HTTP (which made such settlements take 4 s).
const client = createWalletClient({ account, chain, transport: http(rpcUrl), pollingInterval: 50 }).extend(
  publicActions,
);

// Settlements go out one at a time from the one settler account: each takes
// its account nonce from the chain (`pending`) and is sent before the next one
// asks. viem's local nonceManager is not used: it resets on any failed send
// (a settlement whose gas estimate reverts, e.g. a burnt or already-used
// authorization), and a concurrent settlement then fetched a nonce an
// in-flight one already held, failing with `invalid_exact_evm_transaction_failed`.
// Only submission is serialized; receipts are still awaited concurrently.
let submitting = Promise.resolve();
function oneAtATime(submit) {
  const sent = submitting.then(submit, submit);
  submitting = sent.catch(() => {});
  return sent;
}

const signer = toFacilitatorEvmSigner(
  {
    address: account.address,
    getCode: (args) => client.getCode(args),
    readContract: (args) => client.readContract({ ...args, args: args.args ?? [] }),
    verifyTypedData: (args) => client.verifyTypedData(args),
    writeContract: (args) => oneAtATime(() => client.writeContract({ ...args, args: args.args ?? [] })),
    sendTransaction: (args) => oneAtATime(() => client.sendTransaction(args)),
    waitForTransactionReceipt: (args) => client.waitForTransactionReceipt(args),
  },
  { confirmationTimeoutMs: 30_000 },
);

const facilitator = new x402Facilitator()
  .register(V2_NETWORK, new ExactEvmScheme(signer))
  .registerV1(V1_NETWORK, new ExactEvmSchemeV1(signer));

class BadRequest extends Error {}

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new BadRequest("body too large"));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch {
        reject(new BadRequest("body is not JSON"));
      }
    });
    req.on("error", reject);
  });
}

function paymentOf(body) {
  const { paymentPayload, paymentRequirements } = body ?? {};
  if (typeof paymentPayload !== "object" || paymentPayload === null) {
    throw new BadRequest("missing paymentPayload");
  }
  if (typeof paymentRequirements !== "object" || paymentRequirements === null) {
    throw new BadRequest("missing paymentRequirements");
  }
  return { paymentPayload, paymentRequirements };
}

// What the log line says about a payment: never the signature.
function describe(paymentPayload, paymentRequirements) {
  const auth = paymentPayload?.payload?.authorization ?? {};
  return `v${paymentPayload?.x402Version} ${paymentRequirements?.network} from=${auth.from} to=${auth.to} value=${auth.value}`;
}

// Reasons can be multi-line (viem errors): keep the log to one line per request.
function oneLine(text) {
  return JSON.stringify(String(text ?? "").split("\n")[0]);
}

function send(res, status, body) {
  const text = JSON.stringify(body, (_, v) => (typeof v === "bigint" ? v.toString() : v));
  res.writeHead(status, { "content-type": "application/json" });
  res.end(text);
}

async function route(req) {
  const path = new URL(req.url, "http://localhost").pathname;
  if (req.method === "GET" && path === "/supported") {
    return { status: 200, body: facilitator.getSupported(), note: "" };
  }
  if (req.method === "POST" && path === "/verify") {
    const { paymentPayload, paymentRequirements } = paymentOf(await readJson(req));
    const r = await facilitator.verify(paymentPayload, paymentRequirements);
    const outcome = r.isValid ? "valid" : `invalid=${oneLine(r.invalidReason)}`;
    return { status: 200, body: r, note: `${describe(paymentPayload, paymentRequirements)} ${outcome}` };
  }
  if (req.method === "POST" && path === "/settle") {
    const { paymentPayload, paymentRequirements } = paymentOf(await readJson(req));
    const r = await facilitator.settle(paymentPayload, paymentRequirements);
    // `errorMessage` (the chain's or RPC's own words) is what explains a
    // generic `invalid_exact_evm_transaction_failed`; it never holds the signature.
    const detail = r.errorMessage ? ` message=${oneLine(r.errorMessage)}` : "";
    const outcome = r.success ? `tx=${r.transaction}` : `failed=${oneLine(r.errorReason)}${detail}`;
    return { status: 200, body: r, note: `${describe(paymentPayload, paymentRequirements)} ${outcome}` };
  }
  return { status: 404, body: { error: `no route ${req.method} ${path}` }, note: "" };
}

const server = createServer(async (req, res) => {
  const started = Date.now();
  let status;
  let note;
  try {
    const r = await route(req);
    status = r.status;
    note = r.note;
    send(res, r.status, r.body);
  } catch (err) {
    status = err instanceof BadRequest ? 400 : 500;
    const message = err instanceof Error ? err.message : String(err);
    note = `error=${oneLine(message)}`;
    send(res, status, { error: message });
  }
  console.log(`${new Date().toISOString()} ${req.method} ${req.url} ${status} ${Date.now() - started}ms ${note}`.trimEnd());
});

server.listen(port, host, () => {
  console.log(
    `facilitator listening on http://${host}:${port} (settler ${account.address}, rpc ${rpcUrl}, networks ${V2_NETWORK} + ${V1_NETWORK})`,
  );
});

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    server.close();
    process.exit(0);
  });
}
