#!/usr/bin/env bash
# The plain SimCLR student (docs/research_record.md 8.9's best validation row: k_pos 0, lambda_dl 0,
# no repulsion weights, i.e. NT-Xent continued from the guide) trained from the guide of a
# recorded pipeline run, with that run's split, epochs, one-schedule offsets and student
# settings, so that it is paired with the run's own student (same guide, data and schedule;
# only the three switches differ, which benchmarks/campaign/plain_student_summary.py checks). Used for
# the 100-epoch runs of docs/research_record.md 8.11. Test and validation metrics both land in
# the student's results.json.
#   PIPELINE=<pipeline run dir> TASK=<task name> bash benchmarks/campaign/plain_student_from_pipeline_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
: "${PIPELINE:?PIPELINE=<a pipeline run directory with pipeline.json and guide/checkpoints/last.ckpt>}"
: "${TASK:?TASK=<task name for the student run>}"
guide="$PIPELINE/guide/checkpoints/last.ckpt"
[ -f "$guide" ] || { echo "no guide checkpoint at $guide: PIPELINE must be an ltcl-pipeline run directory" >&2; exit 1; }
read -r guide_epochs student_epochs split_seed seed model < <("$BIN/python" -c "
import json, sys
d = json.load(open(sys.argv[1]))
s, c = d['stages'], d['config']
print(s['guide']['epochs'], s['student']['epochs'], c['data']['split']['seed'], c['seed'],
      'cifar_resnet10_w16' if c['model']['backbone']['depths'] == [1, 1, 1, 1] else 'unknown')" "$PIPELINE/pipeline.json")
# the pipeline student's own stage-2 settings (inert once the three switches are off, but kept
# so that the two students' configs differ in the switches alone)
mapfile -t same < <("$BIN/python" -c "
import json, sys
m = json.load(open(sys.argv[1]))['config']['method']
for key in ('temperature', 'delta', 'attraction_weights', 'density_k', 'positive_bank',
            'distillation', 'distill_teacher_temperature', 'distill_student_temperature', 'init'):
    print(f'method.{key}={m[key]}'.replace('True', 'true').replace('False', 'false'))" "$PIPELINE/student/results.json")
[ "$model" = cifar_resnet10_w16 ] || { echo "this script reproduces medium-tier (cifar_resnet10_w16) pipelines only" >&2; exit 1; }
echo "[plain student $(date +%H:%M:%S)] guide $guide_epochs + student $student_epochs epochs, split $split_seed, seed $seed"
"$BIN/ltcl-train" task_name="$TASK" data=cifar10_lt_folder model="$model" \
  trainer=cpu data.global_batch_size=256 trainer.enable_progress_bar=false \
  trainer.check_val_every_n_epoch=1000 data.split.seed="$split_seed" seed="$seed" 'eval.protocols=[knn,linear_b]' \
  method=student "method.guide_checkpoint=$guide" "${same[@]}" \
  method.k_pos=0 method.lambda_dl=0 method.repulsion_weights=false \
  trainer.max_epochs="$student_epochs" ++optim.schedule.horizon_epochs=$((guide_epochs + student_epochs)) \
  ++optim.schedule.start_epoch="$guide_epochs"
