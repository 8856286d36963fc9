#!/usr/bin/env bash
# Every evaluation protocol on the checkpoint of benchmarks/baseline/simclr_cifar10_lt_cpu.sh (CPU):
# kNN, linear probe (b), linear probe (a), few-shot (1%, 100-shot, 50-shot).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:-outputs/benchmark/simclr_cifar10_lt_r100_split0_seed0}
.venv/bin/ltcl-eval \
  ckpt_path="$RUN/checkpoints/last.ckpt" \
  data=cifar10_lt_folder \
  'eval.protocols=[knn,linear_b,linear_a,few_shot]' \
  tag=all_protocols \
  "$@"
