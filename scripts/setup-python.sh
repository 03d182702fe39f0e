#!/usr/bin/env bash
# Creates the repo-root .venv with the official OpenAI, Anthropic and Google Gen AI
# Python SDKs plus pytest, pinned, for integration-tests/python.
# Idempotent: a fast no-op when the venv already has exactly these pins.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
PINS=(
  "openai==3.51.0"
  "anthropic==2.10.0"
  "google-genai==3.6.1"
  "pytest==9.2.0"
)
STAMP="$VENV/.switchyard-pins"
WANT="$(printf '%s\n' "${PINS[@]}")"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "setup-python: $VENV up to date"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
"$VENV/bin/python" -c 'import openai, anthropic, pytest; from google import genai; print("setup-python: openai", openai.__version__, "anthropic", anthropic.__version__, "google-genai", genai.__version__, "pytest", pytest.__version__)'
printf '%s\n' "$WANT" > "$STAMP"
