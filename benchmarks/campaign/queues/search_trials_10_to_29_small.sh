#!/usr/bin/env bash
# Session 5: the search's 20 remaining trials (same study, keys migrated), small tier, split 0.
cd /work/campaign5
export PYTHONPATH=/work/campaign5 BIN=/work/main/.venv/bin WANDB_MODE=offline
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
export LTCL_LOG_DIR=/work/campaign/outputs SEARCH_EPOCHS=12
STEPS=2 TRIALS=20 bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
echo QUEUE7 DONE
