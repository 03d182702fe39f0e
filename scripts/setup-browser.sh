#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver for the dashboard browser test
# (gateway/tests/dashboard_browser.rs). Idempotent: a no-op when both are present, so CI
# can call it on every run; `apt-get update` runs at most once per invocation and only
# when something is missing.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if have chromium && have chromedriver; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null

if ! have chromium || ! have chromedriver; then
    echo "setup-browser: chromium or chromedriver still missing after install" >&2
    exit 1
fi
chromium --version
chromedriver --version
