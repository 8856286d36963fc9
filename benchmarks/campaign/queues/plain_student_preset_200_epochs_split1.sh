#!/usr/bin/env bash
# Session 10 (queue22.sh): the full medium budget, 200 ID epochs, on split 1 (never
# tuned on), for the shipped preset experiment=method_tuned_medium_plain_student_cpu (guide 100
# + plain student 100, one schedule; the campaign's ood.candidates_per_round=20000, which
# --cfg job shows is its only difference from step 3u with the three student switches off)
# against SimCLR 200 (the campaign script's step 4). The method's own student (queue21's plan)
# is left out to fit the 2-core session: at 100 epochs it was level with the plain student.
# Every stage resumes from its last.ckpt when this runs again. About 2 h 15 min of 2-core CPU.
cd /work/campaign9
export PYTHONPATH=/work/campaign9 BIN=/work/main/.venv/bin WANDB_MODE=offline
export LTCL_LOG_DIR=/work/campaign/outputs9
echo "[queue22 $(date +%H:%M:%S)] the preset, 200 ID epochs, split 1"
"$BIN/ltcl-pipeline" -m task_name=campaign_final_plain_preset_medium_e200 \
  experiment=method_tuned_medium_plain_student_cpu data=cifar10_lt_folder ood=tinyimagenet \
  ood.candidates_per_round=20000 trainer=cpu data.global_batch_size=256 \
  trainer.enable_progress_bar=false trainer.check_val_every_n_epoch=1000 \
  stages.total_epochs=200 stages.one_schedule=true data.split.seed=1 'eval.protocols=[knn,linear_b]'
echo "[queue22 $(date +%H:%M:%S)] SimCLR 200, split 1"
MODEL=cifar_resnet10_w16 TIER=_medium_e200 FINAL_EPOCHS=200 FINAL_SPLITS=1 IMAGE_EPOCHS=200 \
  STEPS=4 bash benchmarks/campaign/campaign_cifar10_lt_cpu.sh
echo "QUEUE22 DONE $(date +%H:%M:%S)"
