#!/usr/bin/env bash
# The GPU variant of the benchmarks in one command, sized for a 10-minute slot on one H100/H200-class GPU:
#   bash benchmarks/run_gpu.sh [OUT_DIR]
# Stages, most wanted first, each under its own time limit; a stage that fails or times out is reported and the
# next one runs, and a stage whose limit would end past BUDGET seconds (default 570) is skipped, so the script
# always ends inside the slot with what it measured under OUT_DIR:
#   the CUDA tests of the norm layers and of the fused Triton GN kernels; step.py on the real I3D-R50 (32×224², bf16
#   autocast) at 8 and 4 clips: eager GN, BN and GN with the fused Triton kernels, interleaved, in contiguous and in
#   channels_last_3d format; then torch.compile'd and eager steps interleaved; compiled with CUDA graphs at 4 clips;
#   norm.py at the real activation sizes (bf16, norm + residual + ReLU, Triton and compiled layers); the end-to-end
#   fit throughput (a real fit on mp4 files: data wait).
# Uses `python3` as found; set PYTHON to choose another interpreter.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-benchmarks/results}}
PY=${PYTHON:-python3}
BUDGET=${BUDGET:-570}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
START=$SECONDS

stage() {  # stage LIMIT_SECONDS COMMAND...: run it under `timeout` unless it could overrun the budget
    local limit=$1
    shift
    if (( SECONDS - START + limit > BUDGET )); then
        echo "[run_gpu] skipped (${limit} s would pass the ${BUDGET} s budget): $*"
        return
    fi
    echo "[run_gpu] $(( SECONDS - START )) s: $*"
    timeout "$limit" "$@"
    local status=$?
    (( status == 0 )) || echo "[run_gpu] exit status $status (124: timed out after ${limit} s): $*"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
stage 90 "$PY" -m pytest -q -p no:cacheprovider tests/test_norm.py tests/test_models.py tests/test_fused_norm.py \
    -k "cuda or every_norm or values_and_gradients"
stage 80 "$PY" benchmarks/step.py --device cuda --repeats 5 --clips 8 4 --no_memory --triton \
    --json "$OUT/step_cuda_triton.json"
stage 80 "$PY" benchmarks/step.py --device cuda --repeats 5 --clips 8 4 --no_memory --triton --channels_last \
    --json "$OUT/step_cuda_channels_last_triton.json"
stage 200 "$PY" benchmarks/step.py --device cuda --repeats 5 --clips 8 4 --no_memory --compile \
    --json "$OUT/step_cuda_compiled.json"
stage 100 "$PY" benchmarks/step.py --device cuda --repeats 5 --clips 4 --no_memory --compile \
    --compile_mode reduce-overhead --json "$OUT/step_cuda_cudagraphs.json"
stage 60 "$PY" benchmarks/norm.py --device cuda --repeats 10 --clips 4 --dtypes bf16 --tail add-relu --triton \
    --json "$OUT/norm_cuda_triton.json"
stage 150 "$PY" benchmarks/norm.py --device cuda --repeats 10 --clips 4 --dtypes bf16 --tail add-relu --triton \
    --compile --json "$OUT/norm_cuda_triton_compiled.json"
stage 90 "$PY" benchmarks/fit_throughput.py --device cuda --steps 60 --json "$OUT/fit_throughput_cuda.json"
echo "[run_gpu] done in $(( SECONDS - START )) s"
