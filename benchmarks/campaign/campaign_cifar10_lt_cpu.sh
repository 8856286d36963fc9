#!/usr/bin/env bash
# The effectiveness campaign on CPU (CIFAR-10-LT JPEG copy, ratio 100, Tiny ImageNet 32 px OOD
# pool, small conv net, batch 256), tuned on validation data only:
#   1. SimCLR on split 0 at the search budget (validation kNN, for context);
#   2. an Optuna search (hparams_search=method_val: both stages and the split of the epoch
#      budget) on split 0, maximising the student's *validation* kNN accuracy;
#   3. the best trial's settings at the final budget on splits FINAL_SPLITS (never tuned on),
#      against SimCLR at the same number of ID epochs (stages.compare=[simclr]: in the same run
#      directory), and the controls: SimCLR + randomly sampled OOD (method/sampler=random, beta 0,
#      lambda_dd 0) and COLT's sampling rule (method/sampler=colt), each a guide run of the whole
#      budget with the tuned OOD schedule;
#   3s. the same tuned method with one LR schedule over both stages (stages.one_schedule);
#   3v. students of other stage-2 settings (FINAL_VARIANTS) from step 3s's guides: by default
#       the validation-best single change of the ablation (repulsion weights off), the search's
#       second-best trial (22: no guided positives) and, as a diagnostic, no distillation;
#   3t. the first 10 trials' choice (experiment=method_tuned_cpu_10trials), one schedule;
#   3g. the tuned guide alone for the whole budget (stage 1 against the random-OOD control);
#   3u. the tuned method with one schedule and the stage 1 that the medium tier's own ablation
#       chose on split 0's validation (RETUNED: overrides, benchmarks/campaign/stage1_ablation_medium_cpu.sh);
#   4. SimCLR at equal *images processed*: the method's guide sees one OOD image per ID image,
#      so guide E/2 + student E/2 processes 1.5 E ID-epochs of images and the random / COLT
#      controls 2 E; SimCLR trains 1.5 E and 2 E epochs on splits FINAL_SPLITS;
#   5. ltcl-report tables (test kNN and probe (b)) into benchmarks/campaign/results/campaign_cifar10_lt_cpu.
# Resumable: every run has a stable directory and the study lives in sqlite. STEPS picks the
# steps (e.g. STEPS=3c,4 for the COLT control and the equal-images SimCLR only); a search with
# more TRIALS continues the sqlite study where it stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
TRIALS=${TRIALS:-20}
SEARCH_EPOCHS=${SEARCH_EPOCHS:-16}
FINAL_EPOCHS=${FINAL_EPOCHS:-40}
FINAL_SPLITS=${FINAL_SPLITS:-1,2,3}
# The tier: MODEL=cifar_resnet10_w16 TIER=_medium runs steps 3-5 on the medium tier
# (benchmarks/campaign/campaign_medium_cifar10_lt_cpu.sh); TIER suffixes the final tasks' names.
MODEL=${MODEL:-small}
TIER=${TIER:-}
IMAGE_EPOCHS=${IMAGE_EPOCHS:-"$((FINAL_EPOCHS * 3 / 2)) $((FINAL_EPOCHS * 2))"}
LOG=${LTCL_LOG_DIR:-outputs}
OUT=benchmarks/campaign/results/campaign_cifar10_lt_cpu
mkdir -p "$OUT" "$LOG"
common=(
  data=cifar10_lt_folder model=$MODEL trainer=cpu data.global_batch_size=256
  trainer.enable_progress_bar=false trainer.check_val_every_n_epoch=1000
)
pool=(ood=tinyimagenet ood.candidates_per_round=20000)
STEPS=${STEPS:-1,2,3,3r,3c,3s,4,5}
FINAL_VARIANTS=${FINAL_VARIANTS:-"no_repulsion_weights:method.repulsion_weights=false;no_guided_positives:method.k_pos=0;no_distillation:method.lambda_dl=0"}
stamp() { echo "[campaign $(date +%H:%M:%S)] $*"; }
want() { [[ ",$STEPS," == *",$1,"* ]]; }
best="$LOG/campaign_search/multirun/optimization_results.yaml"
[ -f "$best" ] || best="$OUT/search_best.yaml"

if want 1; then
stamp "1/5 SimCLR reference, split 0, $SEARCH_EPOCHS epochs"
"$BIN/ltcl-train" task_name=campaign_search_ref "${common[@]}" trainer.max_epochs="$SEARCH_EPOCHS" \
  data.split.seed=0 'eval.protocols=[knn]' eval.plots=false
fi

if want 2; then
stamp "2/5 Optuna search, $TRIALS trials, split 0, $SEARCH_EPOCHS epochs per trial"
"$BIN/ltcl-pipeline" -m hparams_search=method_val task_name=campaign_search "${common[@]}" \
  "${pool[@]}" data.split.seed=0 stages.total_epochs="$SEARCH_EPOCHS" \
  hydra.sweeper.n_trials="$TRIALS" "hydra.sweeper.storage=sqlite:///$LOG/campaign_search.db" \
  'eval.protocols=[knn]' eval.plots=false
best="$LOG/campaign_search/multirun/optimization_results.yaml"
cp "$best" "$OUT/search_best.yaml"
"$BIN/ltcl-report" "$LOG/campaign_search/multirun" --metrics knn --group-by method config.task_name --out "$OUT/search" || true
fi
mapfile -t tuned < <("$BIN/python" benchmarks/campaign/best_params.py "$best")
mapfile -t schedule < <("$BIN/python" benchmarks/campaign/best_params.py "$best" --only method.sampler. ood.)
stamp "tuned: ${tuned[*]}"

if want 3; then
stamp "3/5 final: the method vs SimCLR, splits $FINAL_SPLITS, $FINAL_EPOCHS epochs"
"$BIN/ltcl-pipeline" -m task_name=campaign_final$TIER "${common[@]}" "${pool[@]}" "${tuned[@]}" \
  stages.total_epochs="$FINAL_EPOCHS" 'stages.compare=[simclr]' data.split.seed="$FINAL_SPLITS" \
  'eval.protocols=[knn,linear_b]'
fi
for strategy in random colt; do
  want "3${strategy:0:1}" || continue
  stamp "3/5 control: guide with method/sampler=$strategy, $FINAL_EPOCHS epochs"
  extra=()
  [ "$strategy" = random ] && extra=(method.beta=0 method.lambda_dd=0)
  "$BIN/ltcl-train" -m task_name=campaign_final_$strategy$TIER "${common[@]}" method=guide \
    "${pool[@]}" method/sampler=$strategy "${schedule[@]}" "${extra[@]}" \
    trainer.max_epochs="$FINAL_EPOCHS" data.split.seed="$FINAL_SPLITS" 'eval.protocols=[knn,linear_b]'
done

if want 3g; then
  # The tuned stage 1 alone for the whole budget: against the random-OOD control (same images,
  # same schedule) it isolates what the guide's losses and the clusters' picks do.
  mapfile -t stage1 < <("$BIN/python" benchmarks/campaign/best_params.py "$best" --only method. ood.)
  stamp "3/5 the tuned guide alone, $FINAL_EPOCHS epochs, splits $FINAL_SPLITS"
  "$BIN/ltcl-train" -m task_name=campaign_final_guide$TIER "${common[@]}" method=guide "${pool[@]}" \
    "${stage1[@]}" trainer.max_epochs="$FINAL_EPOCHS" data.split.seed="$FINAL_SPLITS" \
    'eval.protocols=[knn,linear_b]'
fi

if want 3s; then
  # The per-stage schedule confound: the same tuned method with one warm-up and one cosine
  # over both stages (stages.one_schedule=true) instead of a restart per stage.
  stamp "3/5 the tuned method with one schedule over both stages, splits $FINAL_SPLITS"
  "$BIN/ltcl-pipeline" -m task_name=campaign_final_one_schedule$TIER "${common[@]}" "${pool[@]}" \
    "${tuned[@]}" stages.total_epochs="$FINAL_EPOCHS" stages.one_schedule=true \
    data.split.seed="$FINAL_SPLITS" 'eval.protocols=[knn,linear_b]'
fi

if want 3u; then
  # The small tier's stage-1 weights do not carry over to the medium tier (docs/research_record.md
  # 8.7): the same pipeline as step 3s with the stage-1 overrides RETUNED on top.
  read -r -a retuned <<< "${RETUNED:?RETUNED=<stage-1 overrides chosen on split 0 validation>}"
  stamp "3/5 the method with the re-tuned stage 1 (${retuned[*]}), one schedule, splits $FINAL_SPLITS"
  "$BIN/ltcl-pipeline" -m task_name=campaign_final_retuned$TIER "${common[@]}" "${pool[@]}" \
    "${tuned[@]}" "${retuned[@]}" stages.total_epochs="$FINAL_EPOCHS" stages.one_schedule=true \
    data.split.seed="$FINAL_SPLITS" 'eval.protocols=[knn,linear_b]'
fi

if want 3v; then
  # Other stage-2 settings at the final budget, the stage-2 half of "the best settings at the
  # full budget": a student per entry of FINAL_VARIANTS (name:overrides, ';'-separated) from
  # step 3s's guide on each split, with the tuned student settings, the variant's overrides on
  # top and the offsets the pipeline gives its student under one schedule (campaign_pairs.py
  # lists the config keys in which each differs from the pipeline's own student).
  mapfile -t student < <("$BIN/python" benchmarks/campaign/best_params.py "$best" \
    --only stages.student.method. | sed 's/^stages\.student\.method\./method./')
  IFS=';' read -r -a entries <<< "$FINAL_VARIANTS"
  for split in ${FINAL_SPLITS//,/ }; do
    run=$(find "$LOG/campaign_final_one_schedule$TIER/multirun" -maxdepth 1 \
      -name "*_split${split}_seed0_*" | sort | head -1)
    [ -f "$run/guide/checkpoints/last.ckpt" ] || { stamp "no step-3s guide for split $split: skipped"; continue; }
    read -r guide_epochs student_epochs < <("$BIN/python" -c "import json,sys; s=json.load(open(sys.argv[1]))['stages']; print(s['guide']['epochs'], s['student']['epochs'])" "$run/pipeline.json")
    for entry in "${entries[@]}"; do
      name=${entry%%:*}
      read -r -a extra <<< "${entry#*:}"
      stamp "3/5 student variant $name (${extra[*]}), split $split, $student_epochs epochs"
      "$BIN/ltcl-train" -m task_name=campaign_final_student_$name$TIER "${common[@]}" method=student \
        "method.guide_checkpoint=$run/guide/checkpoints/last.ckpt" "${student[@]}" "${extra[@]}" \
        trainer.max_epochs="$student_epochs" ++optim.schedule.horizon_epochs=$((guide_epochs + student_epochs)) \
        ++optim.schedule.start_epoch="$guide_epochs" data.split.seed="$split" 'eval.protocols=[knn,linear_b]'
    done
  done
fi

if want 3t; then
  # The first 10 trials' choice (trial 5, experiment=method_tuned_cpu_10trials), a different
  # stage 1: the whole pipeline with one schedule, as step 3s.
  stamp "3/5 the 10-trial settings with one schedule, splits $FINAL_SPLITS"
  "$BIN/ltcl-pipeline" -m task_name=campaign_final_10trials$TIER experiment=method_tuned_cpu_10trials \
    "${common[@]}" "${pool[@]}" stages.total_epochs="$FINAL_EPOCHS" stages.one_schedule=true \
    data.split.seed="$FINAL_SPLITS" 'eval.protocols=[knn,linear_b]'
fi

if want 4; then
  for epochs in $IMAGE_EPOCHS; do
    stamp "4/5 SimCLR at equal images processed: $epochs epochs, splits $FINAL_SPLITS"
    # One task per budget: trainer.max_epochs may change on resume (extending a run), so
    # without it the longer budget would resume the shorter run's checkpoint.
    "$BIN/ltcl-train" -m task_name=campaign_final_simclr_images_e"$epochs$TIER" "${common[@]}" \
      trainer.max_epochs="$epochs" data.split.seed="$FINAL_SPLITS" 'eval.protocols=[knn,linear_b]'
  done
fi

if want 5; then
stamp "5/5 report"
runs=()
for d in campaign_final campaign_final_random campaign_final_colt campaign_final_one_schedule \
  campaign_final_10trials campaign_final_guide campaign_final_retuned; do
  [ -d "$LOG/$d$TIER/multirun" ] && runs+=("$LOG/$d$TIER/multirun")
done
for d in "$LOG"/campaign_final_simclr_images_e*; do  # every SimCLR budget of this tier
  [[ $(basename "$d") =~ ^campaign_final_simclr_images_e[0-9]+$TIER$ ]] && runs+=("$d/multirun")
done
for d in "$LOG"/campaign_final_student_*; do  # step 3v's students of this tier
  [[ $(basename "$d") =~ ^campaign_final_student_[a-z_]+$TIER$ ]] && runs+=("$d/multirun")
done
"$BIN/ltcl-report" "${runs[@]}" --metrics knn linear --group-by method config.task_name \
  config.trainer.max_epochs --out "$OUT/final$TIER"
"$BIN/python" benchmarks/campaign/campaign_pairs.py "$LOG" "$OUT/campaign_pairs$TIER.md" --tier "$TIER"
fi
stamp done
