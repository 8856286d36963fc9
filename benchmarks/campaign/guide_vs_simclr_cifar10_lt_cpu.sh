#!/usr/bin/env bash
# Stage 1 (the guide) against SimCLR at the same number of epochs, 3 split seeds, on CPU:
# CIFAR-10-LT (JPEG copy, ratio 100), Tiny ImageNet (32 px) OOD pool, small backbone.
# A Hydra multirun (sequential jobs), then ltcl-report over its results.json files.
# The guide: W = 10 warm-up epochs, a round every R = 10 epochs, K = 5,000 OOD images per
# round picked from 20,000 seeded candidates, L_PSD + 0.1 L_DD (BCE domain head).
set -euo pipefail
cd "$(dirname "$0")/../.."
EPOCHS=${EPOCHS:-50}
.venv/bin/ltcl-train -m \
  task_name=guide_vs_simclr \
  method=simclr,guide \
  data.split.seed=0,1,2 \
  data=cifar10_lt_folder \
  ood=tinyimagenet \
  model=small \
  trainer=cpu \
  trainer.max_epochs="$EPOCHS" \
  trainer.check_val_every_n_epoch=10 \
  trainer.enable_progress_bar=false \
  data.global_batch_size=256 \
  method/sampler=kl_cluster method.sampler.warmup_epochs=10 method.sampler.interval=10 method.sampler.budget=5000 \
  method.beta=1.0 \
  ood.candidates_per_round=20000 \
  'eval.protocols=[knn,linear_b]' \
  ckpt_path=null \
  "$@"
.venv/bin/ltcl-report outputs/guide_vs_simclr/multirun --metrics knn linear \
  --out benchmarks/campaign/results/guide_vs_simclr_cifar10_lt_cpu
