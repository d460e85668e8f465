#!/usr/bin/env bash
# One prepared GPU check, at most about 8 minutes: the CUDA tests, then elman's trainer vs the
# plain cuDNN loop of pytorch/examples (float32, and elman under bfloat16 autocast) on ptb-small
# and ptb-medium, then 300 steps of the full AWD-LSTM recipe (recipes/ptb-awd-lstm.toml) for its
# tokens/s and epoch time. Writes benchmarks/results/lm_throughput_gpu.json and
# benchmarks/results/recipe_speed_ptb-awd-lstm.json.
#
#   bash benchmarks/gpu.sh     # ELMAN_DATA defaults to .data (a copy of ../shared/data/ptb)
#
# On the lent device machine ../shared does not travel: copy the PTB folder into the
# git-ignored .data/ first and name .data in the device tool's `carry`. That machine's python3
# holds a CUDA build of torch; elman itself runs from src/ (PYTHONPATH), no install needed.
set -euo pipefail
cd "$(dirname "$0")/.."
export ELMAN_DATA="${ELMAN_DATA:-.data}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout 90 "$PY" -m pytest -q tests/gpu
timeout 200 "$PY" benchmarks/lm_throughput.py --device cuda --config both --steps 200 \
    --rounds 2 --bf16 --out benchmarks/results/lm_throughput_gpu.json
timeout 180 "$PY" benchmarks/recipe_speed.py recipes/ptb-awd-lstm.toml --device cuda --steps 300
