#!/usr/bin/env bash
# One-GPU exploration of the two-stage method's settings (run once through the device tool;
# not part of CI). CIFAR-10-LT (JPEG copy, ratio 100, split 0), small backbone, batch 256,
# guide 50 + student 50 epochs against SimCLR 100 epochs; 4 jobs share the GPU at a time.
# The OOD pool here is a 250-per-class half of the Tiny ImageNet copy (50,000 images, what
# fits the device's transfer limit); candidates per round stay 20,000.
# Needs .devcarry/ (ignored by git): site/ (hydra, omegaconf, antlr4, kornia), whl/kornia_rs,
# data/cifar10-jpeg.tar.gz and data/tinyimagenet32-jpeg.tar.gz.
# First attempt (H100, this script's earlier version): all 9 jobs hit the 250 s timeout
# without a result, probably CPU oversubscription (5 processes x 16 OpenMP threads on 16
# cores) plus no time cap per stage. Now: 3 threads per job, trainer.max_time per stage (a
# capped stage still evaluates and writes results.json), and the logs' tails come back.
set -uo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-3}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .devcarry/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/.devcarry/site:$PWD PYTHONUNBUFFERED=1 WANDB_MODE=disabled
export LTCL_SHARED_DATA_DIR=$PWD/.devcarry/data LTCL_DATA_DIR=/tmp/ltcl-data LTCL_LOG_DIR=/tmp/ltcl-out
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/tune_log.txt"
started=$(date +%s)
python3 - <<'PY'  # decode both archives once, before jobs run in parallel
import os
from ltcl.data.archives import image_folder_or_archive
d, s = os.environ["LTCL_DATA_DIR"], os.environ["LTCL_SHARED_DATA_DIR"]
for split in ("train", "test"):
    image_folder_or_archive(f"{d}/cifar10", split, f"{s}/cifar10-jpeg.tar.gz", cache_dir=f"{d}/cache")
image_folder_or_archive(f"{d}/tinyimagenet32", "train", f"{s}/tinyimagenet32-jpeg.tar.gz", cache_dir=f"{d}/cache")
PY
echo "decoded after $(( $(date +%s) - started )) s" | tee -a "$OUT/tune_log.txt"
common=(data=cifar10_lt_folder data.split.seed=0 model=small trainer=gpu
  trainer.check_val_every_n_epoch=10 trainer.enable_progress_bar=false data.global_batch_size=256
  method.sampler.warmup_epochs=10 method.sampler.interval=10 method.sampler.budget=5000
  'eval.protocols=[knn,linear_b]' eval.plots=false ckpt_path=null task_name=tune
  trainer.max_time=${STAGE_MAX_TIME:-00:00:02:00})
pipe() {  # name, overrides...
  local name=$1; shift
  timeout "${PHASE_S:-300}" python3 -m ltcl.cli.pipeline "${common[@]}" ood=tinyimagenet ood.candidates_per_round=20000 \
    trainer.max_epochs=50 run_name="$name" "$@" > "/tmp/$name.log" 2>&1
  echo "$name rc=$? at $(( $(date +%s) - started )) s" | tee -a "$OUT/tune_log.txt"
}
student() {  # name, overrides... (guide of run B)
  local name=$1; shift
  timeout "${PHASE_S:-300}" python3 -m ltcl.cli.train "${common[@]}" method=student trainer.max_epochs=50 \
    method.guide_checkpoint=/tmp/ltcl-out/tune/B_beta0.25/guide/checkpoints/last.ckpt \
    method.beta=0.25 run_name="$name" "$@" > "/tmp/$name.log" 2>&1
  echo "$name rc=$? at $(( $(date +%s) - started )) s" | tee -a "$OUT/tune_log.txt"
}
simclr() {
  timeout "${PHASE_S:-300}" python3 -m ltcl.cli.train "${common[@]}" method=simclr trainer.max_epochs=100 \
    run_name=S_simclr100 > /tmp/S_simclr100.log 2>&1
  echo "S_simclr100 rc=$? at $(( $(date +%s) - started )) s" | tee -a "$OUT/tune_log.txt"
}
simclr &
pipe A_default &
pipe B_beta0.25 method.beta=0.25 &
pipe C_beta0 method.beta=0 &
pipe D_beta0.25_K2000 method.beta=0.25 method.sampler.budget=2000 &
wait
student E_dl0.1 method.lambda_dl=0.1 &
student F_delta0.7_k10 method.delta=0.7 method.k_pos=10 &
student G_scratch method.init=scratch &
student H_kpos0 method.k_pos=0 &
wait
python3 -m ltcl.cli.report /tmp/ltcl-out/tune --metrics knn linear \
  --group-by config.run_name method --out "$OUT" > /dev/null 2>&1
(cd /tmp/ltcl-out && find tune -name results.json -o -name pipeline.json | tar czf "$OUT/tune_results.tar.gz" -T -)
for f in /tmp/*.log; do echo "== $f"; grep -E "^\[ltcl\]   |Error|error|Epoch|epoch" "$f" | tail -8; done >> "$OUT/tune_log.txt"
echo "total $(( $(date +%s) - started )) s" | tee -a "$OUT/tune_log.txt"
