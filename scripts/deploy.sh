#!/usr/bin/env bash
# Deploys everything to the AWS account and region of your current credentials:
# builds the gateway and chat Lambdas for arm64 with cargo-lambda, then
# `cdk deploy --all` (the agent image is built by CDK from ./Dockerfile for
# linux/arm64), then writes the outputs into .env (scripts/write-env.sh).
# Prerequisites: cdk/README.md. Extra arguments go to `cdk deploy`
# (e.g. `-c signer=kms -c kmsKeyArn=arn:aws:kms:...`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Deploy settings (SELLER_WALLET, NETWORK, SIGNER, CDP_API_KEY_ID, ...) from .env
# when present; exported variables win. The CDK app reads only non-secret names
# (cdk/lib/config.ts); secret values never reach a template (cdk tests check it).
if [ -f .env ]; then
  while IFS='=' read -r key value; do
    case "$key" in ''|\#*) continue ;; esac
    [ -z "${!key+x}" ] && export "$key=$value"
  done < <(grep -E '^[A-Z_][A-Z0-9_]*=' .env)
fi

need() { command -v "$1" >/dev/null 2>&1 || { echo "deploy: $1 is required ($2)" >&2; exit 1; }; }
need cargo "https://rustup.rs"
need cargo-lambda "cargo install cargo-lambda --locked, plus zig (pip install ziglang) for arm64 cross builds"
need npm "Node.js 20+"
need docker "Docker with buildx, to build the linux/arm64 agent image"
need aws "AWS CLI v2, configured credentials"

# Same workspace release profile as the agent image (Cargo.toml [profile.release]).
for bin in gateway-lambda chat-lambda chat-authorizer; do
  echo "deploy: building $bin (arm64)"
  cargo lambda build --release --arm64 --package "$bin" --bin "$bin"
  test -f "target/lambda/$bin/bootstrap" || { echo "deploy: target/lambda/$bin/bootstrap missing" >&2; exit 1; }
done

mkdir -p .local
cd cdk
npm ci --no-audit --no-fund
npm run build
npx cdk bootstrap
npx cdk deploy --all --require-approval never --outputs-file "$root/.local/cdk-outputs.json" "$@"
cd "$root"
scripts/write-env.sh "$root/.local/cdk-outputs.json"
web="$(grep -E '^WEB_CHAT_URL=' .env | tail -n1 | cut -d= -f2-)"
echo "deploy: web chat at $web (create a user first: cdk/README.md, \"Signing in to the chat\")"
