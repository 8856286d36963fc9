"""ltcl-report's comparison figures and LaTeX table: their content, not only their files."""

from __future__ import annotations

import numpy as np
import pytest

from ltcl.cli.report import main
from ltcl.errors import DataError
from ltcl.evaluation.report import compare


def run(method: str, split: int, shift: float, order=None) -> dict:
    """A results.json of a 4-class run; ``order`` permutes which label is the head class."""
    counts = np.array([400, 100, 40, 10])
    acc = np.array([80.0, 70.0, 60.0, 50.0]) + shift
    order = np.arange(4) if order is None else np.asarray(order)
    train_count, knn = np.empty(4), np.empty(4)
    train_count[order], knn[order] = counts, acc  # label order[k] is the k-th most frequent
    groups = {"many": [80.0 + shift], "medium": [65.0 + shift], "few": [50.0 + shift]}
    metrics = {g: v[0] for g, v in groups.items()} | {"all": 65.0 + shift, "std": 1.0}
    return {
        "method": method,
        "dataset": "toy",
        "split_seed": split,
        "seed": 0,
        "metrics": {"knn": metrics},
        "per_class": {"train_count": train_count.tolist(), "knn_acc": knn.tolist()},
    }


RUNS = [run("simclr", 1, 0.0), run("simclr", 2, 2.0, order=[3, 2, 1, 0]),
        run("colt", 1, 1.0), run("colt", 2, 5.0, order=[1, 0, 3, 2])]  # fmt: skip


def test_per_class_curves_align_classes_by_rank_across_splits():
    curve = compare.per_class_by_rank([RUNS[2], RUNS[3]], "knn")
    assert curve["count"].tolist() == [400, 100, 40, 10]
    np.testing.assert_allclose(curve["mean"], [83.0, 73.0, 63.0, 53.0])  # shifts 1 and 5
    np.testing.assert_allclose(curve["std"], [2.0] * 4)


def test_the_figures_hold_one_series_per_method_and_the_paired_differences(tmp_path):
    grouped = compare.by_method(RUNS)
    fig = compare.plot_per_class_comparison(grouped, "knn", tmp_path / "a.png")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["simclr (n=2)", "colt (n=2)"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [83.0, 73.0, 63.0, 53.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["400", "100", "40", "10"]
    assert "head → tail" in ax.get_xlabel()

    fig = compare.plot_difference_to_baseline(grouped, "simclr", "knn", tmp_path / "b.png")
    ax = fig.axes[0]
    heights = [round(p.get_height(), 6) for p in ax.patches]
    assert heights == [2.0, 2.0, 2.0, 2.0]  # colt - simclr on splits 1 and 2: +1, +3 -> 2
    assert [t.get_text() for t in ax.get_xticklabels()] == ["all", "many", "medium", "few"]
    assert (tmp_path / "a.png").stat().st_size > 0 and (tmp_path / "b.png").stat().st_size > 0
    with pytest.raises(DataError, match="not among the runs' methods"):
        compare.resolve_baseline(grouped, "moco")


def test_the_latex_table_is_booktabs_with_the_best_mean_in_bold():
    tex = compare.to_latex(compare.by_method(RUNS), ["knn"])
    assert tex.startswith(r"\begin{tabular}{lcccc}") and r"\toprule" in tex
    assert r"\bottomrule" in tex and r"\midrule" in tex
    colt = next(line for line in tex.splitlines() if line.startswith("colt"))
    assert r"\textbf{68.00 $\pm$ 2.00}" in colt  # All: 66 and 70
    simclr = next(line for line in tex.splitlines() if line.startswith("simclr"))
    assert r"66.00 $\pm$ 1.00" in simclr and r"\textbf" not in simclr


def test_ltcl_report_writes_the_latex_table_and_the_figures(tmp_path, capsys):
    import json

    for i, r in enumerate(RUNS):
        folder = tmp_path / "runs" / str(i)
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(r))
    out = tmp_path / "report"
    code = main([str(tmp_path / "runs"), "--out", str(out), "--metrics", "knn",
                 "--format", "markdown", "latex", "--group-by", "method"])  # fmt: skip
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["compare_groups_knn.png", "compare_per_class_knn.png",
                     "compare_vs_simclr_knn.png", "report.md", "report.tex"]  # fmt: skip
    assert r"\toprule" in (out / "report.tex").read_text()
