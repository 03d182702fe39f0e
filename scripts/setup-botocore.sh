#!/usr/bin/env bash
# Creates the venv with botocore (pinned) that the Bedrock mock upstream runs to check every
# SigV4 signature it receives with AWS's own signer (integration-tests/python/sigv4_verify.py),
# so the gateway's signing is verified against the reference, not against itself.
# Idempotent: a fast no-op when the venv already has exactly this pin.
set -euo pipefail

CACHE="${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}"
VENV="$CACHE/venv-botocore"
PYTHON="${PYTHON:-python3}"
PINS=(
  "botocore==1.44.18"
)
STAMP="$VENV/.switchyard-pins"
WANT="$(printf '%s\n' "${PINS[@]}")"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "setup-botocore: $VENV up to date"
  exit 0
fi

mkdir -p "$CACHE"
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
"$VENV/bin/python" -c 'import botocore; print("setup-botocore: botocore", botocore.__version__)'
printf '%s\n' "$WANT" > "$STAMP"
