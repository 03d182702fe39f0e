#!/usr/bin/env bash
# Prepares llama.cpp (llama-cpp-python, built from its sdist, CPU only) as the reference
# implementation for the parity tests and the benchmark (idempotent, cached):
#   $CACHE/wheels/llama_cpp_python-*.whl   the wheel, built once (~10 min on 2 cores)
#   $CACHE/venv-llamacpp/                  venv with that wheel + numpy + gguf
# CACHE = ${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}
#
# Usage: scripts/setup-llamacpp.sh [--force]
# Environment: SWITCHYARD_CACHE, SWITCHYARD_PYTHON (default python3), SWITCHYARD_BUILD_JOBS
#   (parallel compile jobs, default: all cores), pip's own variables.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONVERT="$ROOT/scripts/convert"
CACHE="${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}"
PYTHON="${SWITCHYARD_PYTHON:-python3}"
VENV="$CACHE/venv-llamacpp"
WHEELS="$CACHE/wheels"
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

say() { printf '[setup-llamacpp] %s\n' "$*"; }
die() { printf '[setup-llamacpp] error: %s\n' "$*" >&2; exit 1; }

want="$(cat "$CONVERT/requirements-llamacpp.txt" "$CONVERT/requirements.txt")"
STAMP="$VENV/.switchyard-requirements"
if [ "$FORCE" = 0 ] && [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
   && "$VENV/bin/python" -c 'import llama_cpp' 2>/dev/null; then
  say "ok ($VENV)"
  exit 0
fi
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set SWITCHYARD_PYTHON)"
mkdir -p "$WHEELS"
pin="$(grep -E '^llama-cpp-python==' "$CONVERT/requirements-llamacpp.txt")"
ver="${pin#*==}"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --disable-pip-version-check -q --upgrade pip wheel
if ! ls "$WHEELS"/llama_cpp_python-"$ver"-*.whl >/dev/null 2>&1 || [ "$FORCE" = 1 ]; then
  say "building $pin from source (CPU only; ~10 min on 2 cores, once)"
  # CPU only, no BLAS, no server/examples: what the reference needs and nothing that could
  # pick up a GPU toolkit on a developer's machine.
  CMAKE_ARGS="-DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_BLAS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAVA_BUILD=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL="${SWITCHYARD_BUILD_JOBS:-$(nproc)}" \
    "$VENV/bin/pip" wheel --disable-pip-version-check --no-deps -w "$WHEELS" "$pin" \
    || die "building $pin failed (needs a C/C++ compiler; cmake comes from PyPI)"
fi
whl="$(ls "$WHEELS"/llama_cpp_python-"$ver"-*.whl | head -n1)"
"$VENV/bin/pip" install --disable-pip-version-check -q "$whl" -r "$CONVERT/requirements.txt"
"$VENV/bin/python" -c 'import llama_cpp; print("[setup-llamacpp] llama_cpp", llama_cpp.__version__)'
printf '%s' "$want" > "$STAMP"
say "ok ($VENV)"
