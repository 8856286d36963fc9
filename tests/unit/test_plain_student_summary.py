"""benchmarks/campaign/plain_student_summary.py pairs runs by split and refuses pairs that are not one
experiment apart (synthetic results.json files)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "campaign"))
import plain_student_summary as summary  # noqa: E402


def write(
    path: Path, knn_all: float, config: dict, seconds: float = 10.0, epochs: int = 30
) -> Path:
    metrics = {
        "knn": {
            "all": knn_all,
            "many": knn_all - 8,
            "medium": knn_all + 1,
            "few": knn_all + 10,
            "std": 5.0,
        },
        "linear": {
            "all": knn_all + 4,
            "many": knn_all - 4,
            "medium": knn_all + 5,
            "few": knn_all + 12,
            "std": 4.0,
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {**config, "trainer": {"max_epochs": 30}}
    counts = [4500, 2697, 1617, 969, 581, 348, 208, 125, 75, 45]
    per_class = {  # listed tail first, so that the summary must order them by count
        "train_count": counts[::-1],
        "linear_acc": [knn_all + 4 + c for c in range(10)][::-1],
        "knn_acc": [knn_all + c for c in range(10)][::-1],
    }
    record = {"metrics": metrics, "train_time_s": seconds, "epochs": epochs, "config": config,
              "per_class": per_class}  # fmt: skip
    path.write_text(json.dumps(record))
    return path


def student(k_pos: int, lambda_dl: float, weights: bool, guide: str) -> dict:
    return {
        "task_name": "any",
        "method": {
            "k_pos": k_pos,
            "lambda_dl": lambda_dl,
            "repulsion_weights": weights,
            "guide_checkpoint": guide,
            "delta": 0.9,
        },  # fmt: skip
    }


def build(root: Path, split: int, simclr: float, method: float, plain: float) -> None:
    pipe = root / f"{summary.PIPE_30}/pipeline_split{split}_a"
    plain_pipe = root / f"{summary.PLAIN_30}/pipeline_split{split}_b"
    write(root / f"runs_medium/campaign_final_simclr_images_e30_medium/multirun/s_split{split}_c/results.json", simclr, {})  # fmt: skip
    for run in (pipe, plain_pipe):
        write(run / "guide/results.json", 40.0, {"seed": 0}, seconds=5.0)
    write(pipe / "student/results.json", method, student(5, 1.0, True, f"{pipe}/guide/checkpoints/last.ckpt"))  # fmt: skip
    write(plain_pipe / "student/results.json", plain, student(0, 0.0, False, f"{plain_pipe}/guide/checkpoints/last.ckpt"))  # fmt: skip


def test_pairs_are_differences_on_the_same_split(tmp_path):
    build(tmp_path, 1, simclr=50.0, method=51.0, plain=53.0)
    build(tmp_path, 2, simclr=52.0, method=52.5, plain=53.0)
    part = summary.summarise(tmp_path)["30 ID epochs"]
    pairs = {(p["a"].split(" (")[0], p["b"].split(" (")[0]): p for p in part["pairs"]}
    plain_vs_simclr = pairs[("the plain student", "SimCLR, 30 epochs")]
    assert plain_vs_simclr["splits"] == [1, 2]
    assert [d[0] for d in plain_vs_simclr["diffs"]] == [3.0, 1.0]  # kNN All, per split
    assert [d[0] for d in pairs[("the plain student", "the method")]["diffs"]] == [2.0, 0.5]
    assert set(part["pairing_checked"]) == {1, 2}
    text = summary.markdown(summary.summarise(tmp_path))
    assert "+2.00 ± 1.00 (+3.00 / +1.00)" in text  # mean ± population std (per split)
    assert "5 + 10" in text  # a student's time is its guide's plus its own


def test_a_pair_that_differs_beyond_the_stage2_switches_is_refused(tmp_path):
    build(tmp_path, 1, simclr=50.0, method=51.0, plain=53.0)
    plain = next(tmp_path.glob(f"{summary.PLAIN_30}/*/student/results.json"))
    record = json.loads(plain.read_text())
    record["config"]["method"]["delta"] = 0.5
    plain.write_text(json.dumps(record))
    with pytest.raises(SystemExit, match="method.delta"):
        summary.summarise(tmp_path)


def test_a_pair_with_different_guides_is_refused(tmp_path):
    build(tmp_path, 1, simclr=50.0, method=51.0, plain=53.0)
    guide = next(tmp_path.glob(f"{summary.PLAIN_30}/*/guide/results.json"))
    write(guide, 41.0, {"seed": 0})
    with pytest.raises(SystemExit, match="guides .* differ"):
        summary.summarise(tmp_path)


def test_a_run_stopped_before_its_epochs_is_flagged(tmp_path):
    build(tmp_path, 1, simclr=50.0, method=51.0, plain=53.0)
    simclr = next(
        tmp_path.glob("runs_medium/campaign_final_simclr_images_e30_medium/*/*/results.json")
    )
    write(simclr, 50.0, {}, epochs=12)  # trainer.max_time stopped it at 12 of 30 epochs
    text = summary.markdown(summary.summarise(tmp_path))
    assert "SimCLR, 30 epochs **(stopped early on split 1)**" in text


def test_the_preset_at_200_epochs_is_paired_with_simclr_200_alone(tmp_path):
    """At 200 ID epochs only the preset's own pipeline ran (no method student to pair with):
    its plain student is compared with SimCLR 200 on the same split, its guide time is its
    sibling guide's, and a budget without runs is left out of the report."""
    run = tmp_path / f"{summary.PRESET_200}/pipeline_cifar10_lt_r100_split1_seed0_e0"
    write(tmp_path / "runs_medium_e200/campaign_final_simclr_images_e200_medium_e200/multirun/s_split1_c/results.json", 60.0, {})  # fmt: skip
    write(run / "guide/results.json", 58.0, {"seed": 0}, seconds=7.0)
    write(run / "student/results.json", 61.5, student(0, 0.0, False, f"{run}/guide/checkpoints/last.ckpt"), seconds=3.0)  # fmt: skip
    report = summary.summarise(tmp_path)
    assert list(report) == ["200 ID epochs"]
    part = report["200 ID epochs"]
    pairs = {(p["a"].split(" (")[0], p["b"]): p for p in part["pairs"]}
    assert [d[0] for d in pairs[("the plain student", "SimCLR, 200 epochs")]["diffs"]] == [1.5]
    assert part["pairing_checked"] == {}
    assert "7 + 3" in summary.markdown(report)


def test_per_class_differences_are_ranked_head_to_tail_and_paired_by_split(tmp_path):
    build(tmp_path, 1, simclr=50.0, method=51.0, plain=53.0)
    build(tmp_path, 2, simclr=52.0, method=52.5, plain=53.0)
    part = summary.summarise(tmp_path)["30 ID epochs"]
    data = summary.per_class_differences(part)
    assert data["reference"] == "SimCLR, 30 epochs"
    assert data["train_count"] == [4500, 2697, 1617, 969, 581, 348, 208, 125, 75, 45]
    plain = next(v for k, v in data["differences"].items() if k.startswith("the plain student"))
    assert plain == {1: [3.0] * 10, 2: [1.0] * 10}  # each class, same split, plain minus SimCLR
    ranked = part["rows"]["SimCLR, 30 epochs"]["splits"][1]["per_class"]
    assert ranked["linear"][0] == 54.0 and ranked["linear"][-1] == 63.0  # head class first
    table = "\n".join(summary.per_class_lines(part))
    assert "| the plain student | 1,2 | " + " | ".join(["+2.00"] * 13) + " |" in table
    summary.plot_per_class(summary.summarise(tmp_path), tmp_path / "per_class.png")
    assert (tmp_path / "per_class.png").stat().st_size > 0
