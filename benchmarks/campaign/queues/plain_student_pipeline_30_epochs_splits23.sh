#!/usr/bin/env bash
# Session 9 (queue19.sh): 8.9's plain SimCLR student from the re-tuned guide as a whole pipeline
# on splits 2 and 3 (never tuned on), 30 ID epochs, one schedule; split 1 is queue18. Compared
# with 8.8's SimCLR / method runs of the same splits (runs_medium).
cd /work/campaign9
export PYTHONPATH=/work/campaign9 BIN=/work/main/.venv/bin WANDB_MODE=offline
export LTCL_LOG_DIR=/work/campaign/outputs9
MODEL=cifar_resnet10_w16 TIER=_medium_plain FINAL_EPOCHS=30 FINAL_SPLITS=2,3 \
  RETUNED="method.beta=0 stages.student.method.k_pos=0 stages.student.method.lambda_dl=0 stages.student.method.repulsion_weights=false" \
  STEPS=3u bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
echo QUEUE19 DONE
