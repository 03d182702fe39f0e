#!/usr/bin/env bash
# The whole test suite, from a fresh clone: services, Python SDK venv, model cache,
# then every Rust test (unit, property, end-to-end with the official SDKs).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-services.sh
bash scripts/setup-python.sh
# botocore, whose SigV4 signer the Bedrock mock upstream checks every signature with.
bash scripts/setup-botocore.sh
bash scripts/setup-browser.sh
# The OpenID Provider the console sign-in tests run against (oidc-provider on Node).
bash scripts/setup-oidc.sh
if [ -f scripts/setup-models.sh ]; then
  bash scripts/setup-models.sh
fi
# PostgreSQL answers (ensure-services started it): its tests must run, not skip.
export SWITCHYARD_REQUIRE_POSTGRES=1
# Not `--all-targets`: that would run the bench binaries (harness = false) as tests.
# Benches are compiled by `.ci/run`'s clippy pass.
cargo test --workspace "$@"
