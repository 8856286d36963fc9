#!/usr/bin/env bash
# The full method (guide EPOCHS + student EPOCHS) against SimCLR at the same total budget
# (2 x EPOCHS), 3 split seeds, on CPU: CIFAR-10-LT (JPEG copy, ratio 100), Tiny ImageNet
# (32 px) OOD pool, small backbone, batch 256. One ltcl-pipeline multirun
# (stages.compare=[simclr] trains the SimCLR baseline in the same run directory), then
# ltcl-report. The guide: W 10, R 10, K 5,000 of 20,000 candidates, lambda_dd 0.1, and
# method.beta=BETA (chosen from the stage-1 ablation, guide_beta_cifar10_lt_cpu.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
EPOCHS=${EPOCHS:-40}   # per stage; SimCLR trains 2 x EPOCHS
BETA=${BETA:-0.0}
SPLITS=${SPLITS:-0,1,2}
task=pipeline_vs_simclr
common=(
  data=cifar10_lt_folder model=small trainer=cpu trainer.max_epochs="$EPOCHS"
  trainer.check_val_every_n_epoch=10 trainer.enable_progress_bar=false data.global_batch_size=256
  method/sampler=kl_cluster method.sampler.warmup_epochs=10 method.sampler.interval=10 method.sampler.budget=5000
  'eval.protocols=[knn,linear_b]'
)
.venv/bin/ltcl-pipeline -m task_name=$task "${common[@]}" ood=tinyimagenet \
  ood.candidates_per_round=20000 method.beta="$BETA" 'stages.compare=[simclr]' \
  data.split.seed="$SPLITS"

# The stage-2 ablation on split 0 is benchmarks/campaign/student_ablation_cifar10_lt_cpu.sh.
.venv/bin/ltcl-report outputs/$task/multirun --metrics knn linear \
  --out benchmarks/campaign/results/pipeline_vs_simclr_cifar10_lt_cpu
