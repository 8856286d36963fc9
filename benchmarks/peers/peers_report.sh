#!/usr/bin/env bash
# The official-preset peers next to SimCLR and the method's student (from the earlier peers run,
# which the presets do not touch): ltcl-report's tables (Markdown, LaTeX) and comparison figures
# in peers/results/peers_official_cifar10_lt_cpu/report/. Reads committed records only.
#   bash benchmarks/peers/peers_report.sh        # BIN=.venv/bin; OUT=<dir> writes elsewhere
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
RECORDS=benchmarks/peers/results
OUT=${OUT:-$RECORDS/peers_official_cifar10_lt_cpu/report}
"$BIN/ltcl-report" "$RECORDS/peers_official_cifar10_lt_cpu" \
  "$RECORDS"/peers_cifar10_lt_cpu/split{1,2,3}/{simclr,student} \
  --metrics knn linear --group-by method --format markdown latex --baseline simclr --out "$OUT"
