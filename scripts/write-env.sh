#!/usr/bin/env bash
# Writes the deployed stacks' outputs into .env (creating it from .env-sample
# if needed), replacing existing values of the same keys and keeping the rest.
# Usage: scripts/write-env.sh [cdk-outputs.json] [.env]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
outputs="${1:-$root/.local/cdk-outputs.json}"
envfile="${2:-$root/.env}"
[[ -f "$outputs" ]] || { echo "write-env: $outputs not found (run scripts/deploy.sh)" >&2; exit 1; }
if [[ ! -f "$envfile" && -f "$root/.env-sample" ]]; then cp "$root/.env-sample" "$envfile"; fi
touch "$envfile"

node - "$outputs" "$envfile" <<'JS'
const fs = require('fs');
const [outputsFile, envFile] = process.argv.slice(2);
const stacks = JSON.parse(fs.readFileSync(outputsFile, 'utf8'));
// CDK output key -> .env name (see .env-sample).
const wanted = {
  GatewayUrl: 'GATEWAY_URL',
  WebSocketUrl: 'WEBSOCKET_URL',
  AgentRuntimeArn: 'AGENT_RUNTIME_ARN',
  MemoryId: 'BEDROCK_AGENTCORE_MEMORY_ID',
  ImagesBucket: 'IMAGES_BUCKET',
  UserPoolId: 'COGNITO_USER_POOL_ID',
  UserPoolClientId: 'COGNITO_CLIENT_ID',
  WebChatUrl: 'WEB_CHAT_URL',
  CognitoDomain: 'COGNITO_DOMAIN',
};
const values = {};
for (const outputs of Object.values(stacks)) {
  for (const [key, value] of Object.entries(outputs)) {
    if (wanted[key]) values[wanted[key]] = value;
  }
}
const missing = Object.values(wanted).filter((k) => !(k in values));
if (missing.length) {
  console.error(`write-env: outputs missing: ${missing.join(', ')}`);
  process.exit(1);
}
const lines = fs.readFileSync(envFile, 'utf8').split('\n');
const seen = new Set();
const out = lines.map((line) => {
  const m = /^\s*(?:export\s+)?([A-Z0-9_]+)=/.exec(line);
  if (m && m[1] in values) {
    seen.add(m[1]);
    return `${m[1]}=${values[m[1]]}`;
  }
  return line;
});
while (out.length && out[out.length - 1] === '') out.pop();
for (const [k, v] of Object.entries(values)) if (!seen.has(k)) out.push(`${k}=${v}`);
fs.writeFileSync(envFile, out.join('\n') + '\n');
for (const [k, v] of Object.entries(values)) console.log(`write-env: ${k}=${v}`);
JS
