#!/usr/bin/env bash
# Session 6 (run as queue11.sh 93cdd2e), re-planned at 15:01 (students take 4.5 min: step 3v
# ends about 15:24): after step 3v of queue10, stop queue10 before its step 3t (the 10-trial settings, ~45 min: no time
# left in the session) and run step 3g instead (the tuned guide alone for the whole budget:
# stage 1 against the random-OOD control), splits 1-3 in order, then the report.
until grep -q "STEP 3v DONE" /work/campaign6/queue10.log; do sleep 10; done
q10=$(pgrep -f "bash queue10.sh")
children=$(pgrep -P "$q10")
kill "$q10" $children 2>/dev/null
for _ in $(seq 30); do  # the step-3t script may not have started its pipeline yet
  pkill -f "campaign_final_10trials" 2>/dev/null
  pkill -f "campaign_cifar10_lt_cpu.sh" 2>/dev/null
  sleep 1
done
rm -rf /work/campaign/outputs/campaign_final_10trials_medium
cd /work/campaign6 && git checkout -q --detach "$1"
export PYTHONPATH=/work/campaign6 BIN=/work/main/.venv/bin WANDB_MODE=offline
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
export LTCL_LOG_DIR=/work/campaign/outputs
export MODEL=cifar_resnet10_w16 TIER=_medium FINAL_EPOCHS=30 FINAL_SPLITS=1,2,3
STEPS=3g bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
echo "STEP 3g DONE $(date +%H:%M:%S)"
STEPS=5 bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
echo QUEUE11 DONE
