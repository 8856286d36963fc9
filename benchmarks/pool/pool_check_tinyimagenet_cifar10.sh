#!/usr/bin/env bash
# Is the shared Tiny ImageNet pool (32 x 32 JPEG copy, the OOD pool of every CIFAR run here)
# clean of CIFAR-10's images? ltcl-pool builds it into one array from its folder, then checks it
# against CIFAR-10's train and test folders (exact, near, mirrored copies).
#   bash benchmarks/pool/pool_check_tinyimagenet_cifar10.sh    # BIN=.venv/bin; the folders under LTCL_DATA_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
DATA=${LTCL_DATA_DIR:-data}
WORK=${WORK:-$DATA/pools}
OUT=benchmarks/pool/results/tinyimagenet_vs_cifar10
mkdir -p "$WORK" "$OUT"
[ -f "$WORK/tinyimagenet32.npy.manifest.json" ] || \
  "$BIN/ltcl-pool" build "$WORK/tinyimagenet32.npy" --from "$DATA/tinyimagenet32/train" --size 32
cp "$WORK/tinyimagenet32.npy.manifest.json" "$OUT/"
"$BIN/ltcl-pool" check "$WORK/tinyimagenet32.npy" --against "$DATA/cifar10/train" "$DATA/cifar10/test" \
  --out "$OUT"
