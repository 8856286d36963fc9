#!/usr/bin/env bash
# Session 7 (run as queue13.sh): after queue12's cluster_picks row, stop queue12 before its
# bce_dd row; move the worktree to main (step 3u); run the random_supcon row; choose the
# stage 1 with the best validation kNN All among the guide rows (the search's objective);
# run the method with it on splits 1-3 (step 3u, the search's stage 2 unchanged); then the
# remaining rows (simclr, bce_dd) and the chosen pipeline on split 0's validation.
set -u
until grep -q "\] bce_dd" /work/campaign7/queue12.log; do sleep 5; done
q12=$(pgrep -f "bash queue12.sh")
pkill -P "$(pgrep -f 'stage1_ablation_medium_cpu.sh' | head -1)" 2>/dev/null
kill $q12 2>/dev/null
for _ in $(seq 20); do pkill -f "stage1_medium_bce_dd" 2>/dev/null; pkill -f stage1_ablation_medium_cpu.sh 2>/dev/null; sleep 1; done
rm -rf /work/campaign/outputs/stage1_medium_bce_dd
cd /work/campaign7 && git checkout -q --detach "$1"
export PYTHONPATH=/work/campaign7 BIN=/work/main/.venv/bin WANDB_MODE=offline
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
export LTCL_LOG_DIR=/work/campaign/outputs
ROWS=random_supcon bash benchmarks/campaign/stage1_ablation_medium_cpu.sh
echo "ROWS DONE $(date +%H:%M:%S)"
declare -A rows=(
  [tuned]=""
  [lambda_dd_0]="method.lambda_dd=0"
  [beta_0]="method.beta=0"
  [cluster_picks]="method.beta=0 method.lambda_dd=0"
  [random_ood]="method/sampler=random method.beta=0 method.lambda_dd=0"
  [random_supcon]="method/sampler=random method.beta=0"
)
best=$($BIN/python -c "
import json; r = json.load(open('benchmarks/campaign/results/stage1_ablation_medium_cpu/summary.json'))
print(max((v['knn']['all'], k) for k, v in r.items() if not k.startswith('method_') and k != 'simclr')[1])")
echo "CHOSEN $best: ${rows[$best]}"
export MODEL=cifar_resnet10_w16 TIER=_medium FINAL_EPOCHS=30 FINAL_SPLITS=1,2,3
RETUNED="${rows[$best]}" STEPS=3u bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
echo "STEP 3u DONE $(date +%H:%M:%S)"
ROWS=simclr PIPELINES="$best:${rows[$best]}" bash benchmarks/campaign/stage1_ablation_medium_cpu.sh
echo "PIPELINE DONE $(date +%H:%M:%S)"
ROWS=bce_dd bash benchmarks/campaign/stage1_ablation_medium_cpu.sh
STEPS=5 bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
echo QUEUE13 DONE
