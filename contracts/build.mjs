#!/usr/bin/env node
// Compiles contracts/*.sol with the pinned solcjs (local/node_modules/solc)
// and writes contracts/artifacts.json: the runtime bytecode the local stack
// places with `anvil_setCode`, plus the ABI.
//
//   node contracts/build.mjs          # (re)write artifacts.json
//   node contracts/build.mjs --check  # exit 1 if artifacts.json is not what the sources compile to
//
// The compile is deterministic (fixed source names, settings and compiler),
// so the check proves the committed artifact matches the committed source.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "local", "package.json"));
const solc = require("solc");

const SOURCES = ["USDC.sol", "Multicall3.sol"];
const ARTIFACT = join(here, "artifacts.json");

const input = {
  language: "Solidity",
  sources: Object.fromEntries(
    SOURCES.map((f) => [f, { content: readFileSync(join(here, f), "utf8") }]),
  ),
  settings: {
    // Base runs Cancun+; pinning keeps the bytecode independent of solc's default.
    evmVersion: "cancun",
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.deployedBytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
for (const e of output.errors ?? []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);

const contracts = {};
for (const file of SOURCES) {
  for (const [name, c] of Object.entries(output.contracts[file])) {
    contracts[name] = {
      source: `contracts/${file}`,
      runtimeBytecode: `0x${c.evm.deployedBytecode.object}`,
      abi: c.abi,
    };
  }
}
const artifact = `${JSON.stringify({ compiler: `solc ${solc.version()}`, settings: input.settings, contracts }, null, 2)}\n`;

if (process.argv.includes("--check")) {
  let committed = "";
  try {
    committed = readFileSync(ARTIFACT, "utf8");
  } catch {
    // missing counts as a mismatch
  }
  if (committed !== artifact) {
    console.error("contracts/artifacts.json does not match the sources: run `node contracts/build.mjs` and commit it");
    process.exit(1);
  }
  console.log("contracts/artifacts.json matches the sources");
} else {
  writeFileSync(ARTIFACT, artifact);
  for (const [name, c] of Object.entries(contracts)) {
    console.log(`${name}: ${(c.runtimeBytecode.length - 2) / 2} bytes of runtime code`);
  }
}
