#!/usr/bin/env bash
# Session 9 (queue20.sh), after queue19: does the plain student's lead hold at 100 ID epochs?
# (a) the plain SimCLR student from session 8's 100-epoch split-1 guide (8.10), paired with that
#     guide's own method student; (b) split 2 at 100 ID epochs: the re-tuned pipeline and SimCLR
#     100 (as 8.10's command with FINAL_SPLITS=2), then the plain student from its guide.
cd /work/campaign9
export PYTHONPATH=/work/campaign9 BIN=/work/main/.venv/bin WANDB_MODE=offline
export LTCL_LOG_DIR=/work/campaign/outputs9
while pgrep -f plain_student_pipeline_30_epochs_splits23.sh >/dev/null; do sleep 30; done
PIPELINE=$(ls -d /work/campaign/outputs8/campaign_final_retuned_medium_e100/multirun/pipeline_*split1*) \
  TASK=plain_student_medium_e100 bash benchmarks/campaign/plain_student_from_pipeline_cpu.sh
MODEL=cifar_resnet10_w16 TIER=_medium_e100 FINAL_EPOCHS=100 FINAL_SPLITS=2 IMAGE_EPOCHS=100 \
  RETUNED=method.beta=0 STEPS=3u,4 bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
PIPELINE=$(ls -d "$LTCL_LOG_DIR"/campaign_final_retuned_medium_e100/multirun/pipeline_*split2*) \
  TASK=plain_student_medium_e100 bash benchmarks/campaign/plain_student_from_pipeline_cpu.sh
echo QUEUE20 DONE
