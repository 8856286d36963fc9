#!/usr/bin/env bash
# Session 6 (run as queue10.sh from a worktree of 024c507, moved to 2c473f1 during step 3c so
# that step 3v also ran the no-distillation diagnostic; stopped before step 3t by
# medium_tier_tuned_guide_alone.sh): the medium tier's remaining rows at 30 ID epochs on splits 1-3:
# the random-OOD and COLT-rule controls, the stage-2 variants (repulsion weights off: the ablation's best single
# change on validation; trial 22 = no guided positives), the 10-trial settings; the report.
cd /work/campaign6
export PYTHONPATH=/work/campaign6 BIN=/work/main/.venv/bin WANDB_MODE=offline
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
export LTCL_LOG_DIR=/work/campaign/outputs
export MODEL=cifar_resnet10_w16 TIER=_medium FINAL_EPOCHS=30 FINAL_SPLITS=1,2,3
for step in 3r 3c 3v 3t; do
  STEPS=$step bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
  echo "STEP $step DONE $(date +%H:%M:%S)"
done
STEPS=5 bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
echo QUEUE10 DONE
