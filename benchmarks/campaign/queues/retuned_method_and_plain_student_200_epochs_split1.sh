#!/usr/bin/env bash
# Session 9 (queue21.sh), started at the end of the session to run on past it if the machine
# stays up (every stage resumes from its last.ckpt when the same command runs again): the
# issue's full medium budget, 200 ID epochs, on split 1 (never tuned on): the re-tuned pipeline
# (guide 100 + the method's student 100, one schedule) and SimCLR 200, as 8.10's command with
# FINAL_EPOCHS=200, then the plain student from the same guide. About 3 hours of 2-core CPU.
cd /work/campaign9
export PYTHONPATH=/work/campaign9 BIN=/work/main/.venv/bin WANDB_MODE=offline
export LTCL_LOG_DIR=/work/campaign/outputs9
while pgrep -f plain_student_100_epochs_splits12.sh >/dev/null; do sleep 30; done
MODEL=cifar_resnet10_w16 TIER=_medium_e200 FINAL_EPOCHS=200 FINAL_SPLITS=1 IMAGE_EPOCHS=200 \
  RETUNED=method.beta=0 STEPS=3u,4 bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
PIPELINE=$(ls -d "$LTCL_LOG_DIR"/campaign_final_retuned_medium_e200/multirun/pipeline_*split1*) \
  TASK=plain_student_medium_e200 bash benchmarks/campaign/plain_student_from_pipeline_cpu.sh
echo QUEUE21 DONE
