#!/usr/bin/env bash
# Removes every stack deployed by scripts/deploy.sh (buckets are emptied by
# their auto-delete provider; tables and log groups are deleted).
# Secrets you created in Secrets Manager are yours and are left alone.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/cdk"
npm ci --no-audit --no-fund
npm run build
# Synthesis needs Lambda code dirs; destroying does not need real binaries.
placeholder="$(mktemp -d)"
trap 'rm -rf "$placeholder"' EXIT
touch "$placeholder/bootstrap"
gw="$root/target/lambda/gateway-lambda"; [[ -f "$gw/bootstrap" ]] || gw="$placeholder"
chat="$root/target/lambda/chat-lambda"; [[ -f "$chat/bootstrap" ]] || chat="$placeholder"
auth="$root/target/lambda/chat-authorizer"; [[ -f "$auth/bootstrap" ]] || auth="$placeholder"
npx cdk destroy --all --force -c gatewayCodeDir="$gw" -c chatCodeDir="$chat" -c authorizerCodeDir="$auth" "$@"
