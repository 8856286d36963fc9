#!/usr/bin/env bash
# Session 8 (queue17.sh), after queue16.sh: the stage-2 ablation's all-off row (SimCLR continued
# from the guide), then the report of the 100-epoch check (step 5, tier _medium_e100).
cd /work/campaign8
export PYTHONPATH=/work/campaign8 BIN=/work/main/.venv/bin WANDB_MODE=offline
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
export LTCL_LOG_DIR=/work/campaign/outputs8
while ! grep -q "QUEUE16 DONE" queue16.log; do sleep 20; done
ROWS=plain_simclr_student bash benchmarks/campaign/stage2_ablation_medium_cpu.sh
MODEL=cifar_resnet10_w16 TIER=_medium_e100 FINAL_EPOCHS=100 FINAL_SPLITS=1 STEPS=5 \
  bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
echo QUEUE17 DONE
