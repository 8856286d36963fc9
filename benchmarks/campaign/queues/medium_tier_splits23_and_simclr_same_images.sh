#!/usr/bin/env bash
# Session 5, re-planned at 12:05 (split 1 took 31 min): the medium tier's method and SimCLR at
# the same ID epochs on splits 2 and 3 first, then SimCLR at the same images (34 epochs) on
# split 1, the stage-1 ablation (validation, seed 0), SimCLR 34 on splits 2-3, the report.
cd /work/campaign5
export PYTHONPATH=/work/campaign5 BIN=/work/main/.venv/bin WANDB_MODE=offline
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
export LTCL_LOG_DIR=/work/campaign/outputs
export MODEL=cifar_resnet10_w16 TIER=_medium FINAL_EPOCHS=30
for split in 2 3; do
  FINAL_SPLITS=$split STEPS=3s,4 IMAGE_EPOCHS=30 bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
done
echo SAME ID EPOCHS DONE
FINAL_SPLITS=1 STEPS=4 IMAGE_EPOCHS=34 bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
echo SPLIT1 E34 DONE
PARTS=stage1 SEEDS=0 bash benchmarks/campaign/student_variants_cpu.sh
echo STAGE1 DONE
FINAL_SPLITS=2,3 STEPS=4 IMAGE_EPOCHS=34 bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
STEPS=5 bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
echo QUEUE9 DONE
