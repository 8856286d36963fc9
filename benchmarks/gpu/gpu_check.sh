#!/usr/bin/env bash
# One-GPU check, run once through the device tool on a lent H100/H200 (not part of CI):
#   1. the CUDA-marked tests (batched augmentation on CUDA equals CPU for the same seed);
#   2. SimCLR with the CIFAR ResNet-18 on CIFAR-10-LT (JPEG copy, ratio 100, split seed 0),
#      bf16, batched augmentation on the GPU, for at most MAX_TIME, then kNN on the test set.
# Needs .devcarry/ (ignored by git): site/ with hydra, omegaconf, antlr4, kornia copied from
# .venv, whl/ with kornia_rs for the device's Python, data/cifar10-jpeg.tar.gz.
set -uo pipefail
MAX_TIME=${MAX_TIME:-00:00:05:00}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .devcarry/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/.devcarry/site:$PWD PYTHONUNBUFFERED=1 WANDB_MODE=disabled
export LTCL_SHARED_DATA_DIR=$PWD/.devcarry/data LTCL_DATA_DIR=/tmp/ltcl-data LTCL_LOG_DIR=/tmp/ltcl-out
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)"
python3 -m pytest -q -p no:cacheprovider -m gpu tests/unit/test_transforms.py 2>&1 | tail -3
python3 -m ltcl.cli.train task_name=gpu data=cifar10_lt_folder model=cifar_resnet18 trainer=gpu \
  trainer.max_epochs=400 trainer.max_time="$MAX_TIME" trainer.check_val_every_n_epoch=20 \
  data.global_batch_size=512 trainer.enable_progress_bar=false ckpt_path=null 2>&1 \
  | grep -v "^INFO\|Tip\|warn" | tail -25
run=$(ls -d /tmp/ltcl-out/gpu/*/ | head -1)
cp "$run/results.json" "${OUT:-/tmp}/gpu_simclr_r18_results.json"
cp "$run/csv/version_0/metrics.csv" "${OUT:-/tmp}/gpu_simclr_r18_metrics.csv"
