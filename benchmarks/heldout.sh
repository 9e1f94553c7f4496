#!/usr/bin/env bash
# Held-out check of the defaults (issue 2): scikit-image's bundled photographs, never used for tuning,
# sigma 15/25/50 (not given to our method), our default against wavelet BayesShrink.
# Usage: bash benchmarks/heldout.sh [CROP]   (default 128; results in benchmarks/results/heldout-CROP/)
set -euo pipefail
cd "$(dirname "$0")/.."
crop=${1:-128}
# The folder name is part of each image's id, and so of its noise seed: keep it fixed.
images=$(mktemp -d)/heldout
python benchmarks/export_heldout.py "$images"
dipddpm bench --images "$images" --sigma 15,25,50 --seeds 0 --crop "$crop" \
  --methods ours,bayes-est,bayes,nlm --out "benchmarks/results/heldout-$crop" --quiet
