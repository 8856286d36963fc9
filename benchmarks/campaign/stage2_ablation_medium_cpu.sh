#!/usr/bin/env bash
# The stage-2 ablation at the medium tier's tuned settings (experiment=method_tuned_medium_cpu,
# docs/research_record.md 8.8), on the tuning data only: split 0, *validation* kNN and probe (b).
# Each row is a student from the guide of the split-0 pipeline that
# benchmarks/campaign/stage1_ablation_medium_cpu.sh ran (task stage1_medium_method_<GUIDE_ROW>), with the
# tuned student settings, the pipeline's one-schedule offsets and one component switched off;
# the pipeline's own student is the reference row; plain_simclr_student switches all three off
# (k_pos 0 and no repulsion weights make L_GCL NT-Xent, tests/unit/test_stage2_losses.py):
# SimCLR continued from the guide. Tasks stage2_medium_<row>; table:
# benchmarks/campaign/stage1_ablation_summary.py --prefix stage2_medium_ --control method.
#   LTCL_LOG_DIR=<campaign log dir> bash benchmarks/campaign/stage2_ablation_medium_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
LOG=${LTCL_LOG_DIR:-outputs}
GUIDE_ROW=${GUIDE_ROW:-beta_0}
ROWS=${ROWS:-no_guided_positives,no_distillation,no_repulsion_weights,plain_simclr_student}
OUT=benchmarks/campaign/results/stage2_ablation_medium_cpu
best="$LOG/campaign_search/multirun/optimization_results.yaml"
[ -f "$best" ] || best=benchmarks/campaign/results/campaign_cifar10_lt_cpu/search_best.yaml
run=$(find "$LOG/stage1_medium_method_$GUIDE_ROW/multirun" -maxdepth 1 -name "pipeline_*" | sort | head -1)
[ -f "$run/guide/checkpoints/last.ckpt" ] || { echo "no guide in $run: run stage1_ablation_medium_cpu.sh with PIPELINES first" >&2; exit 1; }
read -r guide_epochs student_epochs < <("$BIN/python" -c "import json,sys; s=json.load(open(sys.argv[1]))['stages']; print(s['guide']['epochs'], s['student']['epochs'])" "$run/pipeline.json")
mapfile -t student < <("$BIN/python" benchmarks/campaign/best_params.py "$best" \
  --only stages.student.method. | sed 's/^stages\.student\.method\./method./')
declare -A rows=(
  [no_guided_positives]="method.k_pos=0"
  [no_distillation]="method.lambda_dl=0"
  [no_repulsion_weights]="method.repulsion_weights=false"
  [plain_simclr_student]="method.k_pos=0 method.lambda_dl=0 method.repulsion_weights=false"
)
mkdir -p "$LOG/stage2_medium_method/multirun"  # the reference row: the pipeline's own student
ln -sfn "$run/student" "$LOG/stage2_medium_method/multirun/$(basename "$run")"
for name in ${ROWS//,/ }; do
  read -r -a extra <<< "${rows[$name]}"
  echo "[stage-2 ablation $(date +%H:%M:%S)] $name: ${extra[*]}"
  "$BIN/ltcl-train" -m task_name="stage2_medium_$name" data=cifar10_lt_folder model=cifar_resnet10_w16 \
    trainer=cpu data.global_batch_size=256 trainer.enable_progress_bar=false \
    trainer.check_val_every_n_epoch=1000 data.split.seed=0 'eval.protocols=[knn,linear_b]' \
    method=student "method.guide_checkpoint=$run/guide/checkpoints/last.ckpt" "${student[@]}" "${extra[@]}" \
    trainer.max_epochs="$student_epochs" ++optim.schedule.horizon_epochs=$((guide_epochs + student_epochs)) \
    ++optim.schedule.start_epoch="$guide_epochs"
done
"$BIN/python" benchmarks/campaign/stage1_ablation_summary.py "$LOG" --prefix stage2_medium_ --control method --out "$OUT"
