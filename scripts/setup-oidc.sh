#!/usr/bin/env bash
# Installs the OpenID Provider the console single sign-on tests sign in through
# (gateway/tests/console_sso.rs): panva's `oidc-provider` from npm, a certified,
# standards-conformant implementation, on the machine's Node.js (>= 20). Into
# ~/.cache/switchyard/oidc-provider, outside git. Idempotent.
set -euo pipefail

VERSION="9.13.3"
DIR="${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}/oidc-provider"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "setup-oidc: node and npm are required (Debian: apt-get install nodejs npm)" >&2
    exit 1
fi

if [ -f "$DIR/node_modules/oidc-provider/package.json" ] &&
    grep -q "\"version\": \"$VERSION\"" "$DIR/node_modules/oidc-provider/package.json"; then
    exit 0
fi

mkdir -p "$DIR"
cd "$DIR"
[ -f package.json ] || echo '{"name":"switchyard-oidc-test-provider","private":true}' >package.json
npm install --no-audit --no-fund --save-exact "oidc-provider@$VERSION"
echo "oidc-provider $VERSION in $DIR"
