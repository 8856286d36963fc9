#!/usr/bin/env bash
# Session 5, after the search: the stage-2 ablation and variants on split 0 (validation), the
# medium tier on splits 1, 2, 3, then the stage-1 ablation (validation, seed 0).
cd /work/campaign5
git checkout -q --detach 3f64ff5
export PYTHONPATH=/work/campaign5 BIN=/work/main/.venv/bin WANDB_MODE=offline
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
export LTCL_LOG_DIR=/work/campaign/outputs
cp /work/campaign/outputs/campaign_search/multirun/optimization_results.yaml \
  benchmarks/campaign/results/campaign_cifar10_lt_cpu/search_best.yaml
PARTS=stage2 bash benchmarks/campaign/student_variants_cpu.sh
echo VARIANTS DONE
FINAL_EPOCHS=30 bash benchmarks/campaign/campaign_medium_cifar10_lt_cpu.sh
echo MEDIUM DONE
PARTS=stage1 SEEDS=0 bash benchmarks/campaign/student_variants_cpu.sh
echo QUEUE8 DONE
