#!/usr/bin/env bash
# The campaign's final comparison on the medium CPU tier (model=cifar_resnet10_w16,
# docs/research_record.md 8.5), one split at a time so that a cut-short run still leaves whole splits:
# for each split of SPLITS, the tuned method with one schedule over both stages (step 3s),
# then SimCLR for the same ID epochs and for the same images processed (step 4: FINAL_EPOCHS,
# and FINAL_EPOCHS x (share x (1 + OOD batch ratio) + 1 - share) from the tuned settings, as
# the guide's batches add ratio x B OOD images); CONTROLS=1 adds the random-OOD and COLT-rule
# controls and the tuned guide alone for the whole budget (steps 3r, 3c, 3g), and SETTINGS=1 the
# next-best settings (steps 3v: stage-2 variants from step 3s's guides; 3t: the 10-trial
# choice) after all splits; then the report (step 5) and the paired table
# (campaign_pairs_medium.md).
#   LTCL_LOG_DIR=<campaign log dir> FINAL_EPOCHS=30 CONTROLS=1 SETTINGS=1 \
#     bash benchmarks/campaign/campaign_medium_cifar10_lt_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export MODEL=cifar_resnet10_w16 TIER=_medium
export FINAL_EPOCHS=${FINAL_EPOCHS:-30}
BIN=${BIN:-.venv/bin}
best="${LTCL_LOG_DIR:-outputs}/campaign_search/multirun/optimization_results.yaml"
[ -f "$best" ] || best=benchmarks/campaign/results/campaign_cifar10_lt_cpu/search_best.yaml
same_images=$("$BIN/python" - "$best" "$FINAL_EPOCHS" <<'PY'
import sys
sys.path.insert(0, "benchmarks/campaign")
from legacy_keys import current
from omegaconf import OmegaConf
params = {current(k): v for k, v in OmegaConf.load(sys.argv[1]).best_params.items()}
share, ratio = params["stages.guide_share"], params["ood.batch_ratio"]
print(round(int(sys.argv[2]) * (share * (1 + ratio) + 1 - share)))
PY
)
export IMAGE_EPOCHS="$FINAL_EPOCHS $same_images"
echo "[medium] SimCLR at the same ID epochs: $FINAL_EPOCHS; at the same images processed: $same_images"
SPLITS=${SPLITS:-1,2,3}
for split in ${SPLITS//,/ }; do
  FINAL_SPLITS=$split STEPS=3s,4 bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
done
if [ "${CONTROLS:-0}" = 1 ]; then  # one control at a time over the splits
  for step in 3r 3c 3g; do
    FINAL_SPLITS=$SPLITS STEPS=$step bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
  done
fi
if [ "${SETTINGS:-0}" = 1 ]; then  # the next-best settings: stage-2 variants, then the 10-trial choice
  for step in 3v 3t; do
    FINAL_SPLITS=$SPLITS STEPS=$step bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
  done
fi
STEPS=5 bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
out=benchmarks/campaign/results/campaign_cifar10_lt_cpu
"$BIN/python" benchmarks/campaign/campaign_summary.py "${LTCL_LOG_DIR:-outputs}" "$out" --tier _medium
"$BIN/python" benchmarks/campaign/campaign_plots.py "$out/runs_medium" "$out/per_class_accuracy_medium.png"
