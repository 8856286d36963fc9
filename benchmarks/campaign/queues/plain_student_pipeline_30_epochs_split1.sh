#!/usr/bin/env bash
# Session 8 (queue18.sh): 8.9's best validation row (the plain SimCLR student from the re-tuned
# guide) as a whole pipeline on split 1 (never tuned on), 30 ID epochs, one schedule, against
# 8.8's split-1 runs. One split: a check of the validation finding, not a result.
cd /work/campaign8
export PYTHONPATH=/work/campaign8 BIN=/work/main/.venv/bin WANDB_MODE=offline
export LTCL_LOG_DIR=/work/campaign/outputs8
MODEL=cifar_resnet10_w16 TIER=_medium_plain FINAL_EPOCHS=30 FINAL_SPLITS=1 \
  RETUNED="method.beta=0 stages.student.method.k_pos=0 stages.student.method.lambda_dl=0 stages.student.method.repulsion_weights=false" \
  STEPS=3u bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
echo QUEUE18 DONE
