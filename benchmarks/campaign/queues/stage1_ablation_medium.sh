#!/usr/bin/env bash
# Session 7 (run as queue12.sh from a worktree of 4435a0f): the medium tier's stage-1 ablation
# on split 0 validation, 30 ID epochs per row.
cd /work/campaign7
export PYTHONPATH=/work/campaign7 BIN=/work/main/.venv/bin WANDB_MODE=offline
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
export LTCL_LOG_DIR=/work/campaign/outputs
bash benchmarks/campaign/stage1_ablation_medium_cpu.sh
echo QUEUE12 DONE
