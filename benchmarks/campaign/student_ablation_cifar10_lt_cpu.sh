#!/usr/bin/env bash
# Stage-2 ablation on split 0, all from the split-0 guide of pipeline_vs_simclr_cifar10_lt_cpu.sh:
# the full student and each variant (no guided positives, no force weights, no L_DL, from
# scratch) for EPOCHS student epochs (20: half the pipeline's student budget, to fit the
# session; the full student is rerun at the same length as the reference).
set -euo pipefail
cd "$(dirname "$0")/../.."
EPOCHS=${EPOCHS:-20}
guide_ckpt=outputs/pipeline_vs_simclr/multirun/pipeline_cifar10_lt_r100_split0_seed0/guide/checkpoints/last.ckpt
ablate() {  # run name, overrides...
  local name=$1; shift
  .venv/bin/ltcl-train task_name=student_ablation data=cifar10_lt_folder model=small trainer=cpu \
    trainer.max_epochs="$EPOCHS" trainer.check_val_every_n_epoch=10 trainer.enable_progress_bar=false \
    data.global_batch_size=256 'eval.protocols=[knn,linear_b]' data.split.seed=0 method=student \
    ckpt_path=null method.guide_checkpoint="$guide_ckpt" run_name="$name" "$@"
}
ablate student_full
ablate student_no_guided_positives method.k_pos=0
ablate student_no_force_weights method.attraction_weights=false method.repulsion_weights=false
ablate student_no_distillation method.lambda_dl=0
ablate student_from_scratch method.init=scratch
.venv/bin/ltcl-report outputs/student_ablation --metrics knn linear --group-by method config.run_name \
  --out benchmarks/campaign/results/student_ablation_cifar10_lt_cpu
