#!/usr/bin/env bash
# CUDA check and decode benchmark of the local runtime on a GPU machine without network.
#
#   gpu-check.sh pack  WHEEL BENCH_BIN [TOKENIZER_DIR]   # here: build .gpu/p1..pN (each <= CHUNK bytes)
#   gpu-check.sh stash DIR                               # GPU machine: copy one carried part to /tmp/gpu/parts
#   gpu-check.sh run                                     # GPU machine: reassemble, build model, benchmark
#
# pack: WHEEL is onnxruntime_gpu-1.31.1-*.whl (CUDA 13 build: its CUDA provider needs
# libcublas(Lt).so.13, libcudart.so.13, libcurand.so.10), BENCH_BIN the release bench binary
#   CARGO_TARGET_DIR=target-gpu cargo bench --no-run -p switchyard-local-runtime --features cuda --bench generate
# TOKENIZER_DIR a converted model dir (default $SWITCHYARD_CACHE/models/tiny-llama). The three
# ORT libraries, the stripped binary and the tokenizer files go into one tar.xz split into parts
# of at most CHUNK bytes (default 64000000), one per folder .gpu/pK (ignored via .git/info/exclude),
# so that each device call carries one part (the call limit is 64 MiB with the working tree).
#
# run (everything to $OUT/log when OUT is set): checks the parts' sha256, unpacks into /tmp/gpu,
# puts python's nvidia/*/lib (CUDA 13 pip libs) on LD_LIBRARY_PATH, builds a random-weight
# model with SmolLM2-135M's full shape (scripts/convert/gguf_llama_to_onnx.py --random-full),
# then runs the bench with BENCH_EP=cuda (1/4/8/16 streams) and BENCH_EP=cpu (1 stream),
# sampling nvidia-smi meanwhile, and prints a summary. CUDA_TOKENS/CPU_TOKENS override 64/32.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GPU=/tmp/gpu
CHUNK="${CHUNK:-64000000}"

pack() {
  local wheel="$1" bin="$2" tok="${3:-${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}/models/tiny-llama}"
  local stage; stage="$(mktemp -d)"
  mkdir -p "$stage/b/ort" "$stage/b/tok"
  unzip -q -j -o "$wheel" 'onnxruntime/capi/libonnxruntime.so.1.31.1' \
    'onnxruntime/capi/libonnxruntime_providers_shared.so' \
    'onnxruntime/capi/libonnxruntime_providers_cuda.so' -d "$stage/b/ort"
  strip -o "$stage/b/bench" "$bin"
  cp "$tok/tokenizer.json" "$tok/tokenizer_config.json" "$tok/config.json" "$stage/b/tok/"
  (cd "$stage/b" && sha256sum ort/* bench tok/* > SHA256SUMS)
  tar -C "$stage/b" -cf - . | xz -9e -T2 > "$stage/bundle.tar.xz"
  rm -rf "$ROOT/.gpu" && mkdir -p "$ROOT/.gpu"
  (cd "$stage" && split -b "$CHUNK" -d -a 2 bundle.tar.xz bundle.part-)
  local sum n=0; sum="$(cd "$stage" && sha256sum bundle.tar.xz | cut -d' ' -f1)"
  for p in "$stage"/bundle.part-*; do
    n=$((n + 1)); mkdir -p "$ROOT/.gpu/p$n"; mv "$p" "$ROOT/.gpu/p$n/"
    echo "$sum" > "$ROOT/.gpu/p$n/bundle.sha256"
  done
  echo "$n" > "$ROOT/.gpu/p$n/parts"   # the last part knows how many there are
  ls -la "$ROOT"/.gpu/p*; rm -rf "$stage"
}

stash() {
  mkdir -p "$GPU/parts"; cp "$1"/* "$GPU/parts/"
  ls -la "$GPU/parts"; df -h /tmp | tail -1
}

xzcat_any() { if command -v xz >/dev/null; then xz -dc; else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer, 1<<20)'; fi; }

run() {
  [ -n "${OUT:-}" ] && exec > >(tee "$OUT/log") 2>&1
  echo "== machine"; nvidia-smi -L || true; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  nproc; uname -m; python3 --version
  echo "== bundle"
  local want; want="$(cat "$GPU/parts/bundle.sha256")"
  [ -f "$GPU/parts/parts" ] || { echo "last part missing"; exit 2; }
  local n; n="$(cat "$GPU/parts/parts")"; local have; have="$(ls "$GPU"/parts/bundle.part-* | wc -l)"
  [ "$have" = "$n" ] || { echo "have $have of $n parts: $(ls "$GPU/parts")"; exit 2; }
  local got; got="$(cat "$GPU"/parts/bundle.part-* | sha256sum | cut -d' ' -f1)"
  [ "$got" = "$want" ] || { echo "bundle sha256 mismatch ($got != $want)"; exit 2; }
  rm -rf "$GPU/b" && mkdir -p "$GPU/b"
  cat "$GPU"/parts/bundle.part-* | xzcat_any | tar -C "$GPU/b" -xf -
  (cd "$GPU/b" && sha256sum -c --quiet SHA256SUMS) && echo "bundle ok: $(ls "$GPU/b/ort")"
  if [ -n "${BENCH_BIN:-}" ]; then cp "$BENCH_BIN" "$GPU/b/bench"; fi   # a newer binary than the bundle's
  chmod +x "$GPU/b/bench"
  echo "== CUDA libraries"
  local site libdirs=""; site="$(python3 -c 'import site; print(site.getsitepackages()[0])')"
  for d in $(find "$site/nvidia" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u) /usr/local/cuda/lib64 /usr/local/nvidia/lib64; do
    [ -d "$d" ] && libdirs="$libdirs:$d"
  done
  export LD_LIBRARY_PATH="$GPU/b/ort${libdirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  ldd "$GPU/b/ort/libonnxruntime_providers_cuda.so" | grep -E 'cublas|cudart|curand|libcuda|not found' || true
  echo "== model"
  python3 "$ROOT/scripts/convert/gguf_llama_to_onnx.py" --random-full --tokenizer-dir "$GPU/b/tok" \
    --out "$GPU/model" --source-id "random weights, SmolLM2-135M shape" 2>&1 | tail -3
  export SWITCHYARD_ORT_LIB="$GPU/b/ort/libonnxruntime.so.1.31.1" BENCH_MODEL_DIR="$GPU/model" BENCH_PYTHON=0
  echo "== bench, CUDA EP"
  nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader -l 1 > "$GPU/smi-apps.log" 2>&1 &
  local smi1=$!
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -lms 500 > "$GPU/smi-gpu.log" 2>&1 &
  local smi2=$!
  local rc=0
  BENCH_EP=cuda BENCH_TOKENS="${CUDA_TOKENS:-64}" BENCH_STREAMS="${CUDA_STREAMS:-1,4,8,16}" timeout 240 "$GPU/b/bench" 2>&1 | tee "$GPU/cuda.out" || rc=$?
  kill "$smi1" "$smi2" 2>/dev/null || true
  echo "bench rc=$rc"
  echo "-- processes on the GPU during the CUDA run (distinct lines):"; sort -u "$GPU/smi-apps.log" | head -5
  echo "-- peak GPU utilisation / memory: $(sort -t, -k1 -n "$GPU/smi-gpu.log" | tail -1) / $(sort -t, -k2 -n "$GPU/smi-gpu.log" | tail -1)"
  echo "== bench, CPU EP ($(nproc) cores)"
  BENCH_EP=cpu BENCH_TOKENS="${CPU_TOKENS:-32}" BENCH_STREAMS=1 timeout 180 "$GPU/b/bench" 2>&1 | tee "$GPU/cpu.out" || echo "cpu bench rc=$?"
  echo "== summary"
  python3 - "$GPU/cuda.out" "$GPU/cpu.out" <<'PY'
import json, sys
def get(p):
    try:
        for line in open(p):
            if line.startswith("BENCH_JSON "):
                return json.loads(line[len("BENCH_JSON "):])
    except OSError:
        pass
gpu, cpu = get(sys.argv[1]), get(sys.argv[2])
print("CUDA EP used:", bool(gpu) and gpu["execution_provider"] == "cuda")
for name, r in (("cuda", gpu), ("cpu", cpu)):
    if not r:
        print(name, "no result"); continue
    print(f"{name}: provider={r['execution_provider']} load={r['load_ms']:.0f} ms ttft={r['ttft_ms']:.1f} ms "
          f"single={r['single_tok_s']:.1f} tok/s ({r['single_completion_tokens']} tokens) "
          + " ".join(f"agg{a['streams']}={a['tok_s']:.1f}(max batch {a['max_batch_seen']})" for a in r["aggregate"]))
PY
}

cmd="${1:-}"; shift || true
case "$cmd" in
  pack) pack "$@" ;;
  stash) stash "$@" ;;
  run) run ;;
  *) sed -n 2,20p "$0"; exit 2 ;;
esac
