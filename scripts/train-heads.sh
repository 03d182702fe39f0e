#!/usr/bin/env bash
# Trains the classifier's sentence heads (difficulty; data referred to without a value;
# confidential content without a marker) over the MiniLM encoder and writes them to
#   $CACHE/models/sentence-head/head.json   (+ rows.jsonl it was trained on, .build-id)
# Training data is generated here (scripts/heads/gen_head_data.py: our own templates,
# never shared/eval/dev.jsonl nor the sources in shared/eval/README.md). Deterministic
# (seeded); about a minute on two cores. Idempotent: skipped when the generator, trainer
# and encoder are unchanged.
# CACHE = ${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}; uses $CACHE/venv-convert and
# $CACHE/models/all-minilm-l6-v2 (scripts/setup-models.sh).
#
# Usage: scripts/train-heads.sh [--force]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}"
PY="$CACHE/venv-convert/bin/python"
MINILM="$CACHE/models/all-minilm-l6-v2"
DIR="$CACHE/models/sentence-head"
FORCE="${FORCE:-0}"
while [ $# -gt 0 ]; do
  case "$1" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
say() { printf '[train-heads] %s\n' "$*"; }
die() { printf '[train-heads] error: %s\n' "$*" >&2; exit 1; }
[ -x "$PY" ] || die "no converter venv at $CACHE/venv-convert: run scripts/setup-models.sh first"
[ -f "$MINILM/manifest.json" ] || die "no encoder at $MINILM: run scripts/setup-models.sh --only minilm"

BUILD_ID="$(cat "$0" "$ROOT/scripts/heads/"*.py "$MINILM/manifest.json" "$ROOT/policies/models/difficulty_lexical.json" | sha256sum | cut -d' ' -f1)"
if [ "$FORCE" = 0 ] && [ -f "$DIR/head.json" ] && [ "$(cat "$DIR/.build-id" 2>/dev/null)" = "$BUILD_ID" ]; then
  say "sentence-head: ok ($DIR)"
  exit 0
fi
mkdir -p "$DIR"
say "generating training rows"
"$PY" "$ROOT/scripts/heads/gen_head_data.py" 15 > "$DIR/rows.jsonl.tmp"
mv "$DIR/rows.jsonl.tmp" "$DIR/rows.jsonl"
# The lexical difficulty of each row (the policies crate's classify example), so the
# combination of the two scores is fitted, not guessed.
say "lexical difficulty of the rows (cargo run -p switchyard-policies --example classify)"
"$PY" -c 'import json, sys
for i, line in enumerate(open(sys.argv[1], encoding="utf-8")):
    print(json.dumps({"id": str(i), "prompt": json.loads(line)["text"]}, ensure_ascii=False))' "$DIR/rows.jsonl" \
  | (cd "$ROOT" && cargo run -q -p switchyard-policies --example classify) > "$DIR/lexical.jsonl" \
  || die "the policies classify example failed (is cargo on PATH?)"
say "training ($(wc -l < "$DIR/rows.jsonl") rows; 5-fold figures follow)"
"$PY" "$ROOT/scripts/heads/train_heads.py" --rows "$DIR/rows.jsonl" --minilm "$MINILM" \
  --lexical "$DIR/lexical.jsonl" --out "$DIR/head.json"
printf '%s' "$BUILD_ID" > "$DIR/.build-id"
say "sentence-head: written $DIR/head.json"
