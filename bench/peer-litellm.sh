#!/usr/bin/env bash
# Side-by-side overhead benchmark: direct-to-mock vs Switchyard vs LiteLLM proxy.
#
#   bench/peer-litellm.sh [--setup-only] [-- bench-peers args...]
#
# 1. Creates (idempotently) a venv with a pinned LiteLLM proxy at
#    ${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}/venv-litellm.
# 2. Builds the release `bench-peers` and `switchyard` binaries.
# 3. Runs bench-peers, which starts the mock upstream, Switchyard (in-process, default
#    config: policy engine + classifier on), LiteLLM (subprocess, bench/litellm-config.yaml)
#    and the load generator, all on 127.0.0.1, and prints one comparison table; then it
#    measures the RSS of the release `switchyard serve` binary after warm-up load.
# Everything is bounded in time (see bench/README.md).
set -euo pipefail

LITELLM_VERSION="${LITELLM_VERSION:-1.79.3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}"
VENV="$CACHE/venv-litellm"
PYTHON="${PYTHON:-python3}"

setup_only=0
if [[ "${1:-}" == "--setup-only" ]]; then setup_only=1; shift; fi
if [[ "${1:-}" == "--" ]]; then shift; fi

stamp="$VENV/.litellm-$LITELLM_VERSION"
if [[ ! -f "$stamp" ]]; then
  echo "peer-litellm: creating $VENV with litellm[proxy]==$LITELLM_VERSION" >&2
  mkdir -p "$CACHE"
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "litellm[proxy]==$LITELLM_VERSION"
  "$VENV/bin/litellm" --version >/dev/null 2>&1 || "$VENV/bin/python" -c "import litellm" 
  rm -f "$VENV"/.litellm-*
  touch "$stamp"
fi
[[ $setup_only == 1 ]] && { echo "peer-litellm: venv ready at $VENV"; exit 0; }

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-bench}"
cd "$ROOT"
cargo build --release -q -p switchyard-integration-tests -p switchyard --bin bench-peers --bin switchyard

# LiteLLM: quiet, offline, no DB / telemetry.
export LITELLM_LOG=ERROR
export LITELLM_LOCAL_MODEL_COST_MAP=True
export LITELLM_TELEMETRY=False
export DISABLE_SCHEMA_UPDATE=True
unset DATABASE_URL LITELLM_MASTER_KEY || true

exec "$CARGO_TARGET_DIR/release/bench-peers" \
  --litellm "$VENV/bin/litellm" \
  --litellm-config "$ROOT/bench/litellm-config.yaml" \
  --litellm-log-config "$ROOT/bench/litellm-uvicorn-log.json" \
  --switchyard-bin "$CARGO_TARGET_DIR/release/switchyard" \
  "$@"
