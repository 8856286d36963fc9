#!/usr/bin/env bash
# How many of stage 2's guided positives are true same-class pairs? A short student run from a
# trained guide, for the [recon] default (delta 0.8, k_pos 5) and pure top-20 selection (delta -1,
# k_pos 20, the campaign's worst trial), logging per step the share of guided pairs whose true
# labels agree (`train/guided_positive_precision`) against the share among all candidate pairs
# (`train/same_class_rate`, what random positives reach). Labels are read for this analysis
# only; they never enter the loss.
#   GUIDE=<guide run>/checkpoints/last.ckpt SPLIT=1 bash benchmarks/analyses/guided_positives_analysis.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
EPOCHS=${EPOCHS:-5}
SPLIT=${SPLIT:-1}
OUT=benchmarks/analyses/results/guided_positives
LOG=${LTCL_LOG_DIR:-outputs}
: "${GUIDE:?set GUIDE=<guide run>/checkpoints/last.ckpt}"
mkdir -p "$OUT"
for variant in "default method.delta=0.8 method.k_pos=5" "top20 method.delta=-1 method.k_pos=20"; do
  set -- $variant
  name=$1; shift
  "$BIN/ltcl-train" task_name=guided_positives run_name="$name" method=student \
    method.guide_checkpoint="$GUIDE" data=cifar10_lt_folder model=small trainer=cpu \
    data.global_batch_size=256 data.split.seed="$SPLIT" trainer.max_epochs="$EPOCHS" \
    trainer.enable_progress_bar=false trainer.check_val_every_n_epoch=1000 \
    trainer.log_every_n_steps=5 'eval.protocols=[knn]' eval.plots=false ckpt_path=null "$@"
done
"$BIN/python" - "$LOG/guided_positives" "$OUT" <<'PY'
import csv, json, sys
from pathlib import Path
root, out = Path(sys.argv[1]), Path(sys.argv[2])
summary = {}
for run in ("default", "top20"):
    rows = list(csv.DictReader(open(sorted((root / run / "csv").glob("version_*"))[-1] / "metrics.csv")))
    per_epoch = {}
    for r in rows:
        p, s = r.get("train/guided_positive_precision"), r.get("train/same_class_rate")
        if p and s:
            per_epoch.setdefault(int(r["epoch"]), []).append((float(p), float(s), float(r["train/guided_positives_per_anchor"])))
    summary[run] = {e: {"precision": round(100 * sum(v[0] for v in vals) / len(vals), 2),
                        "same_class_rate": round(100 * sum(v[1] for v in vals) / len(vals), 2),
                        "guided_per_anchor": round(sum(v[2] for v in vals) / len(vals), 2)}
                    for e, vals in sorted(per_epoch.items())}
(out / "guided_positives.json").write_text(json.dumps(summary, indent=2))
lines = ["| selection | epoch | guided pairs of the same class (%) | any pair of the same class (%) | guided positives per anchor |", "|---|---|---|---|---|"]
for run, epochs in summary.items():
    for e, v in epochs.items():
        lines.append(f"| {run} | {e} | {v['precision']} | {v['same_class_rate']} | {v['guided_per_anchor']} |")
(out / "guided_positives.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
