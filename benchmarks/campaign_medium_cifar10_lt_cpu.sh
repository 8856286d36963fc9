#!/usr/bin/env bash
# The campaign's final comparison on the medium CPU tier (model=cifar_resnet10_w16, benchmarks/
# README.md 8.5), one split at a time so that a cut-short run still leaves whole splits:
# for each split of SPLITS, the tuned method with one schedule over both stages (step 3s),
# then SimCLR for the same ID epochs and for the same images processed (step 4: FINAL_EPOCHS
# and 1.5 x FINAL_EPOCHS); CONTROLS=1 adds the random-OOD control (step 3r) after all splits;
# then the report (step 5) and the paired table (campaign_pairs_medium.md).
#   LTCL_LOG_DIR=<campaign log dir> FINAL_EPOCHS=30 bash benchmarks/campaign_medium_cifar10_lt_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export MODEL=cifar_resnet10_w16 TIER=_medium
export FINAL_EPOCHS=${FINAL_EPOCHS:-30}
export IMAGE_EPOCHS="$FINAL_EPOCHS $((FINAL_EPOCHS * 3 / 2))"
SPLITS=${SPLITS:-1,2,3}
for split in ${SPLITS//,/ }; do
  FINAL_SPLITS=$split STEPS=3s,4 bash benchmarks/campaign_cifar10_lt_cpu.sh
done
if [ "${CONTROLS:-0}" = 1 ]; then
  FINAL_SPLITS=$SPLITS STEPS=3r bash benchmarks/campaign_cifar10_lt_cpu.sh
fi
STEPS=5 bash benchmarks/campaign_cifar10_lt_cpu.sh
