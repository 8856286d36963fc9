#!/usr/bin/env bash
# Stage 1 on split 0: the weight beta of the pseudo-label positives in L_PSD (1 is the
# value of guide_vs_simclr), same settings as guide_ablation_cifar10_lt_cpu.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
EPOCHS=${EPOCHS:-50}
.venv/bin/ltcl-train -m \
  task_name=guide_ablation method=guide data.split.seed=0 \
  data=cifar10_lt_folder ood=tinyimagenet model=small trainer=cpu \
  trainer.max_epochs="$EPOCHS" trainer.check_val_every_n_epoch=10 trainer.enable_progress_bar=false \
  data.global_batch_size=256 \
  method/sampler=kl_cluster method.sampler.warmup_epochs=10 method.sampler.interval=10 method.sampler.budget=5000 \
  ood.candidates_per_round=20000 \
  'eval.protocols=[knn,linear_b]' ckpt_path=null \
  'run_name=guide_${method.sampler.strategy}_dd${method.lambda_dd}_beta${method.beta}_split${data.split.seed}' \
  method.beta=0.0,0.25 "$@"
.venv/bin/ltcl-report outputs/guide_ablation/multirun outputs/guide_vs_simclr/multirun/guide_cifar10_lt_r100_split0_seed0 \
  --metrics knn linear --group-by config.sampler.strategy config.method.lambda_dd config.method.beta \
  --out benchmarks/campaign/results/guide_ablation_cifar10_lt_cpu
