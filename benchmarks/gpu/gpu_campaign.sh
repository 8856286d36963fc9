#!/usr/bin/env bash
# One prepared script for a lent GPU (15 device minutes): at most ~10 minutes of wall time,
# every stage capped (ltcl runs stop through trainer.max_time, then still evaluate and write
# results.json), everything written under $OUT.
#   1. the card's name; the CUDA-marked tests (make test-gpu);
#   2. throughput: the plain PyTorch reference loop, then ltcl SimCLR, guide and student with
#      the CIFAR ResNet-18 on CIFAR-10-LT -> throughput.md (images/s and ratio);
#   3. concurrency: CONCURRENT SimCLR processes at once on the one card (aggregate images/s);
#   4. the comparison: split 0, equal budget (CMP_EPOCHS epochs over the ID data for each
#      method; trainer.max_time is only a safety cap), SimCLR vs the two-stage method (tuned preset
#      experiment=method_tuned_cpu, its stages + a SimCLR stage) and COLT's rule, test kNN and
#      probe (b) -> comparison/report.md.
# DRY=1 runs every stage on the CPU with tiny settings (a slow-tier test does), so the script is
# known to work before a device is lent. On the device it needs .devcarry/ as gpu_check.sh does.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-outputs/gpu_campaign}
DRY=${DRY:-0}
mkdir -p "$OUT/runs"
if [ "$DRY" = 1 ]; then
  PY=${PY:-.venv/bin/python}
  common=(data=embedded model=small model.backbone.width=8 trainer=cpu data.global_batch_size=64)
  pool=(ood=embedded ood.source.num_crops=200 method.sampler.budget=100 method.sampler.warmup_epochs=1 method.sampler.interval=1)
  plain=(--data embedded --model small_convnet --width 8 --batch 64 --workers 1 --seconds 3)
  T_RUN=00:00:00:20; T_CMP=00:00:00:30; EPOCHS=2; CMP_EPOCHS=2; CONCURRENT=${CONCURRENT:-2}; TEST_CAP=120
else
  PY=${PY:-python3}
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .devcarry/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/.devcarry/site:$PWD LTCL_SHARED_DATA_DIR=$PWD/.devcarry/data
  export LTCL_DATA_DIR=/tmp/ltcl-data
  common=(data=cifar10_lt_folder model=cifar_resnet18 trainer=gpu data.global_batch_size=512)
  pool=(ood=tinyimagenet ood.candidates_per_round=20000)
  plain=(--data cifar10_lt_folder --model cifar_resnet18 --batch 512 --workers 16 --seconds 40)
  T_RUN=00:00:01:00; T_CMP=00:00:02:00; EPOCHS=400; CMP_EPOCHS=${CMP_EPOCHS:-60}; CONCURRENT=${CONCURRENT:-3}; TEST_CAP=90
fi
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled LTCL_LOG_DIR=$OUT/logs
train() { timeout 600 "$PY" -m ltcl.cli.train "$@" trainer.enable_progress_bar=false ckpt_path=null; }
stamp() { echo "[gpu-campaign $(date +%H:%M:%S)] $*"; }

stamp "1/4 card and CUDA tests"
(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "cpu (dry run)") > "$OUT/card.txt"
timeout "$TEST_CAP" "$PY" -m pytest -q -p no:cacheprovider -m gpu tests > "$OUT/test_gpu.txt" 2>&1
tail -2 "$OUT/test_gpu.txt"

stamp "2/4 throughput"
timeout 300 "$PY" benchmarks/throughput/plain_simclr_reference.py "${plain[@]}" --out "$OUT/plain.json" > /dev/null
for method in simclr guide; do
  extra=(); [ "$method" = guide ] && extra=(method=guide "${pool[@]}")
  train task_name=tp_$method run_name=$method "${common[@]}" "${extra[@]}" trainer.max_epochs=$EPOCHS \
    trainer.max_time=$T_RUN 'eval.protocols=[knn]' eval.plots=false > "$OUT/tp_$method.log" 2>&1
  cp -r "$OUT/logs/tp_$method/$method" "$OUT/runs/$method" 2>/dev/null
done
train task_name=tp_student run_name=student "${common[@]}" method=student \
  method.guide_checkpoint="$OUT/logs/tp_guide/guide/checkpoints/last.ckpt" trainer.max_epochs=$EPOCHS \
  trainer.max_time=$T_RUN 'eval.protocols=[knn]' eval.plots=false > "$OUT/tp_student.log" 2>&1
cp -r "$OUT/logs/tp_student/student" "$OUT/runs/student" 2>/dev/null
"$PY" benchmarks/throughput/throughput_table.py "$OUT"

stamp "3/4 $CONCURRENT concurrent SimCLR processes"
for i in $(seq 1 "$CONCURRENT"); do
  train task_name=tp_concurrent run_name=c$i seed=$i "${common[@]}" trainer.max_epochs=$EPOCHS \
    trainer.max_time=$T_RUN 'eval.protocols=[]' eval.plots=false > "$OUT/concurrent_$i.log" 2>&1 &
done
wait
"$PY" - "$OUT" <<'PY'
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1]); total = 0.0
for r in sorted((out / "logs" / "tp_concurrent").glob("*/results.json")):
    d = json.loads(r.read_text()); t = (d.get("epoch_times_s") or [0, 0])[1:] or d["epoch_times_s"]
    total += d["train_images"] / statistics.median(t)
(out / "concurrent.json").write_text(json.dumps({"processes": len(list((out / "logs" / "tp_concurrent").glob("*/results.json"))), "aggregate_images_per_s": round(total, 1)}))
print("aggregate images/s:", round(total, 1))
PY

stamp "4/4 comparison: SimCLR vs the method vs COLT's rule, split 0, equal budget"
timeout 900 "$PY" -m ltcl.cli.pipeline task_name=cmp "${common[@]}" "${pool[@]}" experiment=method_tuned_cpu \
  'stages.compare=[simclr]' stages.total_epochs=$CMP_EPOCHS trainer.max_time=$T_CMP \
  trainer.enable_progress_bar=false 'eval.protocols=[knn,linear_b]' > "$OUT/cmp_pipeline.log" 2>&1 &
train task_name=cmp_colt "${common[@]}" method=guide "${pool[@]}" method/sampler=colt trainer.max_epochs=$CMP_EPOCHS \
  trainer.max_time=$T_CMP 'eval.protocols=[knn,linear_b]' > "$OUT/cmp_colt.log" 2>&1 &
wait
"$PY" -m ltcl.cli.report "$OUT/logs/cmp" "$OUT/logs/cmp_colt" --metrics knn linear \
  --group-by method config.task_name --out "$OUT/comparison" > /dev/null
stamp "done: $OUT/throughput.md, $OUT/concurrent.json, $OUT/comparison/report.md"
