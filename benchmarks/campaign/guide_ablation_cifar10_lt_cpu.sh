#!/usr/bin/env bash
# Ablation of stage 1 on one split (seed 0), same settings as guide_vs_simclr_cifar10_lt_cpu.sh:
# the sampler strategy (kl_cluster / colt / random, loss unchanged) and L_DD (lambda_dd = 0).
# The kl_cluster + lambda_dd 0.1 run is the split-0 guide of guide_vs_simclr (beta 1, the
# default then; the default is 0 since guide_beta_cifar10_lt_cpu.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
EPOCHS=${EPOCHS:-50}
common=(
  task_name=guide_ablation method=guide data.split.seed=0
  data=cifar10_lt_folder ood=tinyimagenet model=small trainer=cpu
  trainer.max_epochs="$EPOCHS" trainer.check_val_every_n_epoch=10 trainer.enable_progress_bar=false
  data.global_batch_size=256
  method.sampler.warmup_epochs=10 method.sampler.interval=10 method.sampler.budget=5000 ood.candidates_per_round=20000
  method.beta=1.0
  'eval.protocols=[knn,linear_b]' ckpt_path=null
  'run_name=guide_${method.sampler.strategy}_dd${method.lambda_dd}_split${data.split.seed}'
)
.venv/bin/ltcl-train -m "${common[@]}" method/sampler=colt,random "$@"
.venv/bin/ltcl-train -m "${common[@]}" method/sampler=kl_cluster method.lambda_dd=0.0 "$@"
mkdir -p benchmarks/campaign/results/guide_ablation_cifar10_lt_cpu
.venv/bin/ltcl-report outputs/guide_ablation/multirun outputs/guide_vs_simclr/multirun/guide_cifar10_lt_r100_split0_seed0 \
  --metrics knn linear --group-by config.sampler.strategy config.method.lambda_dd config.method.beta \
  --out benchmarks/campaign/results/guide_ablation_cifar10_lt_cpu
