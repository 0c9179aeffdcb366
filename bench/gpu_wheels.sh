#!/usr/bin/env bash
# Run HERE (where PyPI is reachable), before asking for a lent GPU: downloads into the ignored .whl/ the
# wheels of our data stack that the GPU image lacks (it has torch and torch-geometric; about 57 MB, for
# its Python 3.12), and exports the package as of REF (default 64c7dd6, the commit before the loss ran in
# one pass) into the ignored .ref/ for a same-run reference. Then: the device tool's `run` with carry
# [".whl", ".ref"] and `bash bench/gpu_throughput.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(
  polars==2.1.0 polars-runtime-32==2.1.0 pandera==0.35.0 pydantic==2.14.4 pydantic_core==2.50.5
  annotated-types==0.8.0 typing-inspection==0.4.5 typeguard==4.6.1 exchange_calendars==4.13.2
  pyluach==2.3.0 korean_lunar_calendar==0.4.0 tzdata==2026.6 typing-inspect==0.9.0 mypy_extensions==1.2.0
)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
  manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d .whl "${PKGS[@]}"
du -sh .whl
rm -rf .ref && mkdir -p .ref
git archive "${REF:-64c7dd6}" atft_dagster | tar -x -C .ref
du -sh .ref
