#!/usr/bin/env bash
# Recorded CPU run: SimCLR, small backbone (width 32), CIFAR-10-LT built from the shared JPEG
# copy (ratio 100, n_max 4,500, split seed 0), 2 CPU cores, bf16 autocast, channels_last.
# The online kNN (k=200, T=0.1) runs on the held-out validation split every 10 epochs and on
# the test set at the end. Extra Hydra overrides are passed through, e.g. EPOCHS=5 or seed=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
EPOCHS=${EPOCHS:-50}
.venv/bin/ltcl-train \
  task_name=benchmark \
  data=cifar10_lt_folder \
  model=small \
  method=simclr \
  trainer=cpu \
  trainer.max_epochs="$EPOCHS" \
  trainer.check_val_every_n_epoch=10 \
  trainer.enable_progress_bar=false \
  data.global_batch_size=256 \
  ckpt_path=null \
  "$@"
