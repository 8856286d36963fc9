#!/usr/bin/env bash
# The peers with their official presets (SDCLR's 3-layer projector with a BatchNorm set per
# branch and SDCLR's mask rule; BCL-I's weight decay 5e-4 and BCL-D's own projector BatchNorms;
# COLT's and SDCLR + COLT's sampler as COLT's code runs it: scikit-learn's k-means, the picks
# mixed into the ID set), on the same data and budget as the earlier peers' table
# (benchmarks/peers_cifar10_lt_cpu.sh): CIFAR-10-LT (JPEG copy), ratio 100, small conv net,
# batch 256, CPU, 30 epochs over the ID data, splits SPLITS (never used for tuning). COLT's own
# warm-up of 100 epochs would never sample in 30, so COLT and SDCLR + COLT sample as before: a
# round before epoch 0 and every 2 epochs, 5,000 images from 20,000 seeded candidates.
# SimCLR and the method are unchanged by the presets and are not re-run: the summary pairs these
# runs with their records in benchmarks/results/peers_cifar10_lt_cpu (the same splits).
#   bash benchmarks/peers_official_cifar10_lt_cpu.sh        # BIN=.venv/bin SPLITS="1 2 3"
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
EPOCHS=${EPOCHS:-30}
SPLITS=${SPLITS:-1 2 3}
LOG=${LTCL_LOG_DIR:-outputs}
OUT=${OUT:-benchmarks/results/peers_official_cifar10_lt_cpu}
common=(data=cifar10_lt_folder model=small trainer=cpu data.global_batch_size=256
  trainer.enable_progress_bar=false trainer.check_val_every_n_epoch=1000
  trainer.max_epochs="$EPOCHS" 'eval.protocols=[knn,linear_b]')
ood=(ood=tinyimagenet ood.candidates_per_round=20000 method.sampler.warmup_epochs=0
  method.sampler.interval=2 method.sampler.budget=5000)
mkdir -p "$OUT"
for split in $SPLITS; do
  # One run per peer (a -m sweep over method= would validate method.sampler.* against the
  # default method, which has no sampler).
  for method in colt sdclr_colt; do
    "$BIN/ltcl-train" task_name=peers_official data.split.seed="$split" method=$method \
      "${common[@]}" "${ood[@]}"
  done
  for method in sdclr bcl bcl_d; do
    "$BIN/ltcl-train" task_name=peers_official data.split.seed="$split" method=$method \
      "${common[@]}"
  done
  # Keep each run's results.json under $OUT/split<N>/<peer>/ (the run directories stay in $LOG).
  for results in "$LOG"/peers_official/*/results.json; do
    python3 - "$results" "$OUT" <<'PY'
import json, pathlib, shutil, sys
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
r = json.loads(src.read_text())
dest = out / f"split{r['split_seed']}" / r["method"].lower()
dest.mkdir(parents=True, exist_ok=True)
shutil.copy(src, dest / "results.json")
PY
  done
done
"$BIN/python" benchmarks/peers_summary.py "$OUT" "$OUT/summary.md" \
  --before benchmarks/results/peers_cifar10_lt_cpu
