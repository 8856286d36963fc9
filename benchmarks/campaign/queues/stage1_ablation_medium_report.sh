#!/usr/bin/env bash
# Session 7 (queue14.sh): after queue13's split-0 pipeline, stop it before its bce_dd row (that
# row kept beta 0.1 and says nothing new; redefined in main as beta 0 + BCE, not run) and write
# the report, the paired table, the copied runs and the plot.
until grep -q "PIPELINE DONE" /work/campaign7/queue13.log; do sleep 5; done
pkill -f "bash queue13.sh"
for _ in $(seq 20); do pkill -f "stage1_medium_bce_dd" 2>/dev/null; pkill -f stage1_ablation_medium_cpu.sh 2>/dev/null; sleep 1; done
rm -rf /work/campaign/outputs/stage1_medium_bce_dd
cd /work/campaign7
export PYTHONPATH=/work/campaign7 BIN=/work/main/.venv/bin WANDB_MODE=offline
export LTCL_LOG_DIR=/work/campaign/outputs MODEL=cifar_resnet10_w16 TIER=_medium
$BIN/python benchmarks/campaign/stage1_ablation_summary.py $LTCL_LOG_DIR --out benchmarks/campaign/results/stage1_ablation_medium_cpu
STEPS=5 bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
out=benchmarks/campaign/results/campaign_cifar10_lt_cpu
$BIN/python benchmarks/campaign/campaign_summary.py $LTCL_LOG_DIR $out --tier _medium
echo QUEUE14 DONE
