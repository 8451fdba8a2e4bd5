// An official x402 seller for interop tests: POST /paid costs $0.01 in USDC
// on Base Sepolia, paid to PAY_TO, settled through the facilitator at
// FACILITATOR_URL. VERSION=v2 (default) uses @x402/express; VERSION=v1 the
// legacy v1 middleware, x402-express. Prints `listening <port>` once ready.
import express from "express";

const app = express();
app.use(express.json());
// Free: the benchmarks' measure of this server's own ceiling.
app.get("/health", (req, res) => res.json({ status: "ok" }));

if ((process.env.VERSION ?? "v2") === "v1") {
  const { paymentMiddleware } = await import("x402-express");
  app.use(
    paymentMiddleware(
      process.env.PAY_TO,
      { "/paid": { price: "$0.01", network: "base-sepolia", config: { description: "interop test content" } } },
      { url: process.env.FACILITATOR_URL },
    ),
  );
} else {
  const { paymentMiddleware, x402ResourceServer } = await import("@x402/express");
  const { ExactEvmScheme } = await import("@x402/evm/exact/server");
  const { HTTPFacilitatorClient } = await import("@x402/core/server");
  const facilitator = new HTTPFacilitatorClient({ url: process.env.FACILITATOR_URL });
  const server = new x402ResourceServer(facilitator).register("eip155:84532", new ExactEvmScheme());
  app.use(
    paymentMiddleware(
      {
        "POST /paid": {
          accepts: { scheme: "exact", price: "$0.01", network: "eip155:84532", payTo: process.env.PAY_TO },
          description: "interop test content",
        },
      },
      server,
    ),
  );
}
app.post("/paid", (req, res) => res.json({ content: "paid content", echo: req.body ?? null }));

const listener = app.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(`listening ${listener.address().port}`);
});
process.on("SIGTERM", () => listener.close(() => process.exit(0)));
