#!/usr/bin/env bash
# The pick measure on split 0, the tuning split (the rules are chosen here, never on splits
# 1-3): the medium CPU tier's guide (experiment=method_tuned_medium_plain_student_cpu: 15 of
# 30 ID epochs, a sampling round before epoch 0 and every 2 epochs, 5,000 picks from 20,000
# candidates) and SimCLR at the same 30-epoch budget as the fixed reference embedding; then
# every pick rule of benchmarks/analyses/pick_measure.py on the guide's last round's candidates.
#   bash benchmarks/analyses/pick_measure_split0_cpu.sh        # BIN=.venv/bin, about 30 min on 2 cores
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
LOG=${LTCL_LOG_DIR:-outputs}
OUT=${OUT:-benchmarks/analyses/results/pick_measure_split0_cpu}
"$BIN/ltcl-pipeline" task_name=pick_measure run_name=split0 \
  experiment=method_tuned_medium_plain_student_cpu data=cifar10_lt_folder ood=tinyimagenet \
  ood.candidates_per_round=20000 trainer=cpu data.global_batch_size=256 \
  trainer.enable_progress_bar=false trainer.check_val_every_n_epoch=1000 \
  stages.total_epochs=30 'stages.compare=[simclr]' data.split.seed=0 'eval.protocols=[knn]'
run="$LOG/pick_measure/split0"
"$BIN/python" benchmarks/analyses/pick_measure.py "$run/guide" \
  --reference "$run/simclr/checkpoints/last.ckpt" --out "$OUT"
