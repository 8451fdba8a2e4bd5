// An official x402 v2 seller (@x402/express) for interop tests: POST /paid
// costs $0.01 in USDC on eip155:84532, paid to PAY_TO, settled through the
// facilitator at FACILITATOR_URL. Prints `listening <port>` once ready.
import express from "express";
import { paymentMiddleware, x402ResourceServer } from "@x402/express";
import { ExactEvmScheme } from "@x402/evm/exact/server";
import { HTTPFacilitatorClient } from "@x402/core/server";

const facilitator = new HTTPFacilitatorClient({ url: process.env.FACILITATOR_URL });
const server = new x402ResourceServer(facilitator).register("eip155:84532", new ExactEvmScheme());

const app = express();
app.use(express.json());
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
app.post("/paid", (req, res) => res.json({ content: "paid content", echo: req.body ?? null }));

const listener = app.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(`listening ${listener.address().port}`);
});
process.on("SIGTERM", () => listener.close(() => process.exit(0)));
