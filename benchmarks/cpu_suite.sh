#!/usr/bin/env bash
# The CPU suite (issue 3): first 4 images of Kodak24 and of CBSD68, 128x128 centre crops,
# sigma 15/25/50, report seeds 1 and 2 (defaults were chosen on seed 0), all methods.
# Usage: DATA=../shared/data bash benchmarks/cpu_suite.sh
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-../shared/data}
dipddpm bench --images "$data/kodak24" --images "$data/cbsd68" --limit 4 --sigma 15,25,50 --seeds 1,2 \
  --crop 128 --out benchmarks/results/cpu-suite "$@"
