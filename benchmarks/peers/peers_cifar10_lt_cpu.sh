#!/usr/bin/env bash
# The peers next to the two-stage method at equal ID epochs, one command per split set
# (issue "peers"): CIFAR-10-LT (JPEG copy), ratio 100, small conv net, batch 256, CPU,
# splits SPLITS (never used for tuning). The method runs with the campaign's validation-tuned
# settings (experiment=method_tuned_cpu_10trials: guide 15 + student 15 epochs when EPOCHS=30); every
# peer trains the same EPOCHS over the ID data in the same run directory:
#   simclr, sdclr (prune 0.9), bcl_i, bcl_d, and colt and sdclr_colt (SDCLR + COLT's sampling)
#   with the method's OOD schedule (a round before epoch 0 and every 2 epochs, 5,000 images, 1:1
#   ID:OOD batches: COLT's own warm-up of 100 epochs would never sample in 30).
# Images processed differ (the guide and COLT also see OOD images): see docs/research_record.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
EPOCHS=${EPOCHS:-30}
SPLITS=${SPLITS:-1,2,3}
LOG=${LTCL_LOG_DIR:-outputs}
OUT=benchmarks/peers/results/peers_cifar10_lt_cpu
mkdir -p "$OUT"
"$BIN/ltcl-pipeline" -m task_name=peers experiment=method_tuned_cpu_10trials data=cifar10_lt_folder \
  model=small trainer=cpu data.global_batch_size=256 trainer.enable_progress_bar=false \
  trainer.check_val_every_n_epoch=1000 ood=tinyimagenet ood.candidates_per_round=20000 \
  stages.total_epochs="$EPOCHS" 'stages.compare=[simclr,sdclr,bcl_i,bcl_d,colt,sdclr_colt]' \
  stages.peers.colt.sampler.warmup_epochs=0 stages.peers.colt.sampler.interval=2 \
  stages.peers.colt.sampler.budget=5000 stages.peers.sdclr_colt.sampler.warmup_epochs=0 \
  stages.peers.sdclr_colt.sampler.interval=2 stages.peers.sdclr_colt.sampler.budget=5000 data.split.seed="$SPLITS" 'eval.protocols=[knn,linear_b]'
# Keep each split's results.json under benchmarks/peers/results (the run directories stay in $LOG).
for run in "$LOG"/peers/multirun/pipeline_*_split*; do
  split=$(basename "$run" | sed -E 's/.*_split([0-9]+)_.*/\1/')
  for stage in "$run"/*/; do
    [ -f "$stage/results.json" ] || continue
    mkdir -p "$OUT/split$split/$(basename "$stage")"
    cp "$stage/results.json" "$OUT/split$split/$(basename "$stage")/"
  done
done
"$BIN/ltcl-report" "$OUT" --metrics knn linear --group-by method --out "$OUT"
"$BIN/python" benchmarks/peers/peers_summary.py "$OUT" "$OUT/summary.md"
