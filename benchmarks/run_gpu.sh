#!/usr/bin/env bash
# The GPU variant of the benchmarks in one command, sized for a 10-minute slot on one H100/H200-class GPU:
#   bash benchmarks/run_gpu.sh [OUT_DIR]
# norm.py at the real I3D-R50 activation sizes, step.py on the real I3D-R50 (32×224², bf16 autocast, cudnn
# benchmark; contiguous and channels_last_3d), a CUDA smoke test of the training app (2 epochs of the demo config
# on the GPU in bf16-mixed), the end-to-end fit throughput (real mp4 files, data wait), and the steps with
# torch.compile (eager and compiled interleaved; then CUDA graphs). Before that, the CUDA tests of the norm layers.
# Uses `python3` as found; set PYTHON to choose another interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-benchmarks/results}}
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
timeout 120 "$PY" -m pytest -q -p no:cacheprovider tests/test_norm.py tests/test_models.py -k "cuda or every_norm"
timeout 200 "$PY" benchmarks/norm.py --device cuda --repeats 10 --json "$OUT/norm_cuda.json"
timeout 150 "$PY" benchmarks/step.py --device cuda --repeats 5 --json "$OUT/step_cuda.json"
timeout 150 "$PY" benchmarks/step.py --device cuda --repeats 5 --channels-last --json "$OUT/step_cuda_channels_last.json"
DATA=$(mktemp -d)
timeout 60 "$PY" data_prep/make_synthetic.py --out "$DATA" --quiet
timeout 180 "$PY" -m videogn fit -c configs/demo.yaml --data.train_list "$DATA/train.csv" --data.val_list "$DATA/val.csv" \
    --trainer.accelerator gpu --trainer.devices 1 --trainer.precision bf16-mixed --trainer.max_epochs 2 \
    --data.num_workers 4 --trainer.enable_progress_bar false --trainer.default_root_dir "$DATA/runs" 2>&1 | tail -n 5
ls "$DATA/runs/i3d_gn_8clips/checkpoints"
# does the loader keep the GPU busy: a real fit of the paper's network on mp4 files vs in-memory input
timeout 200 "$PY" benchmarks/fit_throughput.py --device cuda --steps 60 --json "$OUT/fit_throughput_cuda.json"
# last, as they may take a while: torch.compile'd steps interleaved with eager ones, then with CUDA graphs
timeout 240 "$PY" benchmarks/step.py --device cuda --repeats 5 --clips 8 4 --no-memory --compile \
    --json "$OUT/step_cuda_compiled.json"
timeout 150 "$PY" benchmarks/step.py --device cuda --repeats 5 --clips 4 --no-memory --compile \
    --compile-mode reduce-overhead --json "$OUT/step_cuda_cudagraphs.json"
