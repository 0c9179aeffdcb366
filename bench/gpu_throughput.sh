#!/usr/bin/env bash
# Run ON a lent GPU through the device tool, as one call (about 5-6 minutes on an H200):
#   run(command="bash bench/gpu_throughput.sh", carry=[".whl", ".ref"], timeout_s=540)
# after bench/gpu_wheels.sh here. Installs the carried wheels, then measures issue "GPU throughput"'s
# figures: 4000 x 1250 with 4 (the default) and 16 dates per batch (bf16), a kernel profile of 6 steps at
# 4 dates, the reference package in .ref (if carried; bench/gpu_wheels.sh exports it) at 4 dates in the
# same run, and the daily prediction for 4000 stocks (plain, and with the timing gate over 750 days). Rows
# and the log land in $OUT (the tool copies them back); paste the table into docs/benchmarks.md with the
# device name.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/results}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
REF=()
[ -d .ref/atft_dagster ] && REF=(--reference .ref --reference-precision bf16)
python3 bench/bench_throughput.py --sizes 4000x1250 --batch-dates 4 16 --profile-steps 6 "${REF[@]}" \
  --predict-stocks 4000 --predict-gate --out "$OUT/throughput_gpu.jsonl" 2>&1 | tee "$OUT/throughput_gpu.log"
