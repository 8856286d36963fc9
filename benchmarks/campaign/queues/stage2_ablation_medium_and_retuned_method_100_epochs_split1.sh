#!/usr/bin/env bash
# Session 8 (queue16.sh): the machine of session 7 was lost with its run outputs, so
# (1) the split-0 pipeline with the re-tuned stage 1 (beta 0) is rerun to give the stage-2
# ablation its guide, (2) the stage-2 ablation at the re-tuned medium settings (split 0
# validation), (3) the budget-scaling check: the re-tuned method vs SimCLR at 100 ID epochs
# on split 1 (never tuned on). This machine had no libtcmalloc: the LD_PRELOAD below was
# ignored (ld.so printed a warning), so its wall times are without tcmalloc.
cd /work/campaign8
export PYTHONPATH=/work/campaign8 BIN=/work/main/.venv/bin WANDB_MODE=offline
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
export LTCL_LOG_DIR=/work/campaign/outputs8
ROWS= PIPELINES="beta_0:method.beta=0" bash benchmarks/campaign/stage1_ablation_medium_cpu.sh
bash benchmarks/campaign/stage2_ablation_medium_cpu.sh
echo STAGE2 DONE
MODEL=cifar_resnet10_w16 TIER=_medium_e100 FINAL_EPOCHS=100 FINAL_SPLITS=1 IMAGE_EPOCHS=100 \
  RETUNED="method.beta=0" STEPS=3u,4 bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
echo QUEUE16 DONE
