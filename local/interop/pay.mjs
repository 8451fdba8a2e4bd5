// Pays an x402 URL with an official x402 TypeScript client, for interop tests.
//
//   node interop/pay.mjs v2|v1 <url> '<json body>'
//   env: BUYER_PRIVATE_KEY, RPC_URL (the local chain; the clients sign locally)
//
// Prints one JSON line: {status, body, paymentResponse}.
import { privateKeyToAccount } from "viem/accounts";

const [version, url, body] = process.argv.slice(2);
const account = privateKeyToAccount(process.env.BUYER_PRIVATE_KEY);
const init = { method: "POST", headers: { "content-type": "application/json" }, body };

let pay;
let decode;
if (version === "v2") {
  const { wrapFetchWithPaymentFromConfig, decodePaymentResponseHeader } = await import("@x402/fetch");
  const { ExactEvmScheme } = await import("@x402/evm/exact/client");
  pay = wrapFetchWithPaymentFromConfig(fetch, {
    schemes: [{ network: "eip155:84532", client: new ExactEvmScheme(account) }],
  });
  decode = (r) => {
    const h = r.headers.get("PAYMENT-RESPONSE");
    return h ? decodePaymentResponseHeader(h) : null;
  };
} else {
  const { wrapFetchWithPayment, decodeXPaymentResponse } = await import("x402-fetch");
  const { createWalletClient, http } = await import("viem");
  const { baseSepolia } = await import("viem/chains");
  const wallet = createWalletClient({ account, chain: baseSepolia, transport: http(process.env.RPC_URL) });
  pay = wrapFetchWithPayment(fetch, wallet, 1_000_000n);
  decode = (r) => {
    const h = r.headers.get("X-PAYMENT-RESPONSE");
    return h ? decodeXPaymentResponse(h) : null;
  };
}

const r = await pay(url, init);
const text = await r.text();
let parsed;
try {
  parsed = JSON.parse(text);
} catch {
  parsed = text;
}
console.log(JSON.stringify({ status: r.status, body: parsed, paymentResponse: decode(r) }));
