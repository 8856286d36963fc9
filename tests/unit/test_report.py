"""ltcl.evaluation.report: aggregation over runs, the ltcl-report command, plots and the inspection notebook."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from ltcl.cli.report import main
from ltcl.errors import ConfigError, DataError
from ltcl.evaluation.report import (
    aggregate,
    find_results,
    load_results,
    plot_embedding_2d,
    plot_group_bars,
    plot_per_class_accuracy,
    to_csv,
    to_markdown,
    write_all_plots,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO_ROOT / "notebooks" / "inspect_run.ipynb"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_results(
    knn_all: float = 60.0,
    split_seed: int = 0,
    method: str = "simclr",
    dataset: str = "cifar10_lt",
    linear: bool = True,
) -> dict:
    """A CIFAR-10-LT-shaped results.json with every group shifted by knn_all - 60."""
    shift = knn_all - 60.0
    counts = [int(4500 * 100 ** (-c / 9)) for c in range(10)]
    results = {
        "method": method,
        "dataset": dataset,
        "imbalance_ratio": 100,
        "split_seed": split_seed,
        "seed": 0,
        "epochs": 200,
        "train_time_s": 812.3,
        "metrics": {
            "knn": {
                "all": knn_all,
                "many": 70.0 + shift,
                "medium": 55.0 + shift,
                "few": 50.0 + shift,
                "std": 8.5,
                "per_class_std": 9.1,
            },
            "knn_evaluated_on": "test",
        },
        "per_class": {
            "train_count": counts,
            "knn_acc": [75.0 - 3 * c + shift for c in range(10)],
        },
        "class_groups": {"many": [0, 1, 2, 3], "medium": [4, 5, 6], "few": [7, 8, 9]},
        "split": {"seed": split_seed},
        "config": {},
    }
    if linear:
        results["metrics"]["linear"] = {
            "all": knn_all + 10,
            "many": 80.0,
            "medium": 70.0,
            "few": 60.0,
            "std": 8.16,
            "per_class_std": 9.0,
            "protocol": "b",
        }
        results["metrics"]["few_shot"] = {
            "100shot": {"all": 50.0, "many": 55.0, "medium": 50.0, "few": 45.0, "std": 4.08}
        }
        results["per_class"]["linear_acc"] = [80.0 - 2 * c for c in range(10)]
    return results


def write_run(directory: Path, results: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "results.json"
    path.write_text(json.dumps(results))
    return path


@pytest.fixture
def multirun(tmp_path: Path) -> Path:
    """Three simclr splits (kNN all 60 / 62 / 64; linear on two), nested, and one sdclr run."""
    root = tmp_path / "multirun"
    write_run(root / "run_split0", make_results(60.0, split_seed=0))
    write_run(root / "run_split1", make_results(62.0, split_seed=1, linear=False))
    write_run(root / "nested" / "run_split2" / "eval", make_results(64.0, split_seed=2))
    write_run(root / "sdclr_split0", make_results(70.0, split_seed=0, method="sdclr"))
    return root


def by_method(rows: list[dict]) -> dict[str, dict]:
    return {row["method"]: row for row in rows}


# -- aggregation ----------------------------------------------------------------------------


def test_aggregate_mean_and_population_std(multirun: Path) -> None:
    rows = aggregate(load_results(find_results([multirun])))
    simclr = by_method(rows)["simclr"]
    assert simclr["n"] == 3
    assert simclr["split_seeds"] == [0, 1, 2]
    assert simclr["seeds"] == [0]
    knn = simclr["metrics"]["knn"]
    assert knn["all"]["mean"] == pytest.approx(62.0)
    assert knn["all"]["std"] == pytest.approx(math.sqrt(8 / 3))  # 1.633, ddof 0
    assert knn["all"]["std"] == pytest.approx(1.633, abs=1e-3)
    assert knn["many"]["mean"] == pytest.approx(72.0)
    assert knn["few"]["std"] == pytest.approx(1.633, abs=1e-3)
    assert knn["std"]["mean"] == pytest.approx(8.5)
    assert knn["std"]["std"] == pytest.approx(0.0)


def test_aggregate_groups_by_method_and_dataset(multirun: Path) -> None:
    runs = load_results(find_results([multirun]))
    runs.append(make_results(50.0, dataset="cifar100_lt"))
    rows = aggregate(runs)
    keys = [(r["method"], r["dataset"], r["n"]) for r in rows]
    assert keys == [
        ("sdclr", "cifar10_lt", 1),
        ("simclr", "cifar100_lt", 1),
        ("simclr", "cifar10_lt", 3),
    ]
    sdclr = by_method(rows)["sdclr"]["metrics"]["knn"]["all"]
    assert sdclr == {"mean": 70.0, "std": 0.0, "n": 1}


def test_aggregate_groups_by_a_dotted_config_key() -> None:
    runs = []
    for strategy, knn in (("colt", 61.0), ("random", 58.0), ("colt", 63.0)):
        run = make_results(knn, method="guide")
        run["config"] = {"sampler": {"strategy": strategy}}
        runs.append(run)
    rows = aggregate(runs, group_by=["method", "config.sampler.strategy"])
    assert [(r["config.sampler.strategy"], r["n"]) for r in rows] == [("colt", 2), ("random", 1)]
    assert rows[0]["metrics"]["knn"]["all"]["mean"] == pytest.approx(62.0)
    assert "| guide | colt | 2 |" in to_markdown(rows)


def test_aggregate_missing_protocol(multirun: Path) -> None:
    runs = load_results(find_results([multirun]))
    simclr = by_method(aggregate(runs))["simclr"]
    linear = simclr["metrics"]["linear"]
    # Only splits 0 and 2 ran the linear probe: the mean is over those two, and says so.
    assert linear["all"] == {"mean": pytest.approx(72.0), "std": pytest.approx(2.0), "n": 2}

    knn_only = [make_results(60.0, linear=False), make_results(62.0, linear=False)]
    row = aggregate(knn_only, metrics=("knn", "linear"))[0]
    assert row["metrics"]["linear"] is None
    markdown = to_markdown([row])
    assert "linear all" not in markdown  # a protocol nobody ran gets no columns
    assert "61.00 ± 1.00" in markdown


def test_aggregate_nested_metric_and_nan(multirun: Path) -> None:
    runs = load_results(find_results([multirun]))
    runs[0]["metrics"]["knn"]["few"] = float("nan")  # a group without test images
    rows = aggregate(runs, metrics=("few_shot.100shot",))
    simclr = by_method(rows)["simclr"]
    assert simclr["metrics"]["few_shot.100shot"]["all"]["mean"] == pytest.approx(50.0)
    assert simclr["metrics"]["few_shot.100shot"]["all"]["n"] == 2
    knn_few = by_method(aggregate(runs))["simclr"]["metrics"]["knn"]["few"]
    assert knn_few["n"] == 2 and math.isfinite(knn_few["mean"])


def test_to_markdown_summary_and_per_run(multirun: Path) -> None:
    runs = load_results(find_results([multirun]))
    markdown = to_markdown(aggregate(runs), per_run=runs)
    lines = markdown.splitlines()
    header = next(line for line in lines if line.startswith("| method"))
    assert "| kNN all (test) | many | medium | few | Std |" in header
    assert "| linear all (test) |" in header
    simclr_line = next(line for line in lines if line.startswith("| simclr | cifar10_lt | 3 |"))
    assert "62.00 ± 1.63" in simclr_line
    assert "72.00 ± 2.00 (n=2)" in simclr_line
    # The per-run table: one line per results.json with its path, seeds, epochs and numbers.
    assert "## Runs" in markdown
    run_line = next(line for line in lines if "nested/run_split2/eval/results.json" in line)
    cells = [c.strip() for c in run_line.strip("|").split("|")]
    assert cells[:6] == [
        "nested/run_split2/eval/results.json",
        "simclr",
        "cifar10_lt",
        "2",
        "0",
        "200",
    ]
    assert cells[6] == "64.00"
    split1 = next(line for line in lines if "run_split1/results.json" in line)
    assert split1.rstrip().endswith("| – | – | – | – | – |")  # no linear probe


def test_to_csv_plain_floats(multirun: Path) -> None:
    rows = aggregate(load_results(find_results([multirun])))
    table = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert len(table) == 2
    simclr = next(r for r in table if r["method"] == "simclr")
    assert float(simclr["knn_all_mean"]) == pytest.approx(62.0)
    assert float(simclr["knn_all_std"]) == pytest.approx(math.sqrt(8 / 3))
    assert simclr["linear_all_n"] == "2"
    assert simclr["split_seeds"] == "0 1 2"
    sdclr = next(r for r in table if r["method"] == "sdclr")
    assert sdclr["knn_all_std"] == "0.0"


# -- finding and loading --------------------------------------------------------------------


def test_find_results_recursive(multirun: Path) -> None:
    found = find_results([multirun])
    assert len(found) == 4
    assert multirun / "nested" / "run_split2" / "eval" / "results.json" in found
    # A file may be passed directly, and a path given twice is counted once.
    direct = multirun / "run_split0" / "results.json"
    assert find_results([direct, multirun / "run_split0"]) == [direct]


def test_find_results_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DataError, match="no results.json under .*run or multirun directory"):
        find_results([tmp_path / "empty"])
    with pytest.raises(DataError, match="does not exist"):
        find_results([tmp_path / "missing"])


def test_load_results_malformed_json(tmp_path: Path) -> None:
    bad = tmp_path / "run" / "results.json"
    bad.parent.mkdir()
    bad.write_text('{"method": "simclr", "metrics": {')
    with pytest.raises(DataError, match=r"run/results\.json is not a readable JSON"):
        load_results([bad])
    bad.write_text("[1, 2]")
    with pytest.raises(DataError, match="no 'metrics'"):
        load_results([bad])
    good = write_run(tmp_path / "ok", make_results())
    assert load_results([good])[0]["path"] == str(good)


# -- command line ---------------------------------------------------------------------------


def test_cli_writes_report(multirun: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    assert main([str(multirun), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| simclr | cifar10_lt | 3 |" in printed
    assert "62.00 ± 1.63" in printed
    markdown = (out / "report.md").read_text()
    assert markdown in printed
    rows = list(csv.DictReader(io.StringIO((out / "report.csv").read_text())))
    assert {r["method"] for r in rows} == {"simclr", "sdclr"}


def test_cli_default_out_and_metrics(multirun: Path, capsys) -> None:
    assert main([str(multirun), "--metrics", "knn"]) == 0
    assert "linear all" not in capsys.readouterr().out
    assert (multirun / "report.md").is_file()
    assert (multirun / "report.csv").is_file()


def test_cli_split_marks_which_numbers_are_shown(tmp_path: Path, capsys) -> None:
    test_numbers = make_results(knn_all=61.0)
    run = {**test_numbers, "val_metrics": {"knn": {**test_numbers["metrics"]["knn"], "all": 73.5}}}
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "results.json").write_text(json.dumps(run))
    assert main([str(tmp_path), "--metrics", "knn"]) == 0
    printed = capsys.readouterr().out
    assert "kNN all (test)" in printed and "61.00" in printed and "73.50" not in printed
    assert main([str(tmp_path), "--metrics", "knn", "--split", "val"]) == 0
    printed = capsys.readouterr().out
    assert "kNN all (val)" in printed and "73.50" in printed


def test_cli_unknown_metric_is_an_error(multirun: Path, capsys) -> None:
    assert main([str(multirun), "--metrics", "foo"]) == 2
    assert "no run has test numbers for ['foo']" in capsys.readouterr().err


def test_cli_error_is_a_message(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ltcl-report: error: no results.json under")
    assert "Traceback" not in err


# -- plots ----------------------------------------------------------------------------------


def assert_png(path: Path) -> None:
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000  # a drawn figure, not an empty canvas
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 600 and height >= 400


def test_plot_per_class_accuracy(tmp_path: Path) -> None:
    assert_png(plot_per_class_accuracy(make_results(), tmp_path / "a.png"))
    knn_only = make_results(linear=False)
    knn_only["per_class"]["knn_acc"][3] = None  # a class without test images
    assert_png(plot_per_class_accuracy(knn_only, tmp_path / "b.png"))


def test_plot_per_class_accuracy_bad_input(tmp_path: Path) -> None:
    results = make_results()
    results["per_class"]["knn_acc"] = results["per_class"]["knn_acc"][:5]
    with pytest.raises(DataError, match="knn_acc has 5 entries"):
        plot_per_class_accuracy(results, tmp_path / "a.png")
    del results["per_class"]
    with pytest.raises(DataError, match="per_class.train_count"):
        plot_per_class_accuracy(results, tmp_path / "a.png")


def test_plot_group_bars(tmp_path: Path) -> None:
    assert_png(plot_group_bars(make_results(), tmp_path / "bars.png"))
    assert_png(plot_group_bars(make_results(linear=False), tmp_path / "knn.png"))
    with pytest.raises(DataError, match="no metrics.knn"):
        plot_group_bars({"metrics": {}}, tmp_path / "none.png")


def test_plot_embedding_2d_pca(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=300)
    features = rng.normal(size=(300, 32)) + labels[:, None] * 0.5
    names = [f"c{i}" for i in range(10)]
    path = plot_embedding_2d(
        features, labels, tmp_path / "emb.png", class_names=names, max_points=200
    )
    assert_png(path)
    with pytest.raises(ConfigError, match="'pca' or 'tsne'"):
        plot_embedding_2d(features, labels, tmp_path / "x.png", method="umap")
    with pytest.raises(DataError, match="one label per image"):
        plot_embedding_2d(features, labels[:10], tmp_path / "x.png")
    with pytest.raises(DataError, match="one name per class"):
        plot_embedding_2d(features, labels, tmp_path / "x.png", class_names=names[:3])


def test_write_all_plots(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    written = write_all_plots(
        make_results(), tmp_path, features=rng.normal(size=(50, 8)), labels=rng.integers(0, 3, 50)
    )
    assert [p.name for p in written] == [
        "per_class_accuracy.png",
        "group_accuracy.png",
        "embedding_2d.png",
    ]
    for path in written:
        assert path.parent == tmp_path
        assert_png(path)
    assert len(write_all_plots(make_results(), tmp_path / "no_features")) == 2


def test_linear_a_and_tsne_projection(tmp_path: Path) -> None:
    """Protocol A (SDCLR/COLT probe) is plotted and aggregated like the others."""
    results = make_results()
    results["metrics"]["linear_a"] = {"all": 71.0, "many": 78.0, "medium": 69.0, "few": 64.0}
    results["per_class"]["linear_a_acc"] = [78.0 - 2 * c for c in range(10)]
    rng = np.random.default_rng(2)
    written = write_all_plots(
        results,
        tmp_path,
        features=rng.normal(size=(40, 6)),
        labels=rng.integers(0, 4, 40),
        projection="tsne",
    )
    for path in written:
        assert_png(path)
    row = aggregate([results], metrics=("knn", "linear_a"))[0]
    assert row["metrics"]["linear_a"]["all"]["mean"] == 71.0
    assert row["metrics"]["linear_a"]["std"] is None
    assert "| linear A all (test) |" in to_markdown([row])


# -- notebook -------------------------------------------------------------------------------


@pytest.mark.slow
def test_inspect_run_notebook(tmp_path: Path, monkeypatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    torch = pytest.importorskip("torch")

    run_dir = tmp_path / "run"
    results = copy.deepcopy(make_results())
    results["metrics"]["knn"]["few"] = float("nan")  # written as NaN by json, as a run may
    write_run(run_dir, results)
    (run_dir / "checkpoints").mkdir()
    torch.save(
        {
            "epoch": 3,
            "global_step": 42,
            "hyper_parameters": {"method": "simclr", "backbone": {"name": "resnet18"}},
            "state_dict": {
                "backbone.conv1.weight": torch.zeros(8, 3, 3, 3),
                "backbone.bn1.weight": torch.ones(8),
                "backbone.bn1.running_mean": torch.zeros(8),
                "backbone.bn1.num_batches_tracked": torch.tensor(0),
                "projector.0.weight": torch.zeros(4, 8),
            },
        },
        run_dir / "checkpoints" / "last.ckpt",
    )
    monkeypatch.setenv("LTCL_RUN_DIR", str(run_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()

    text, images = [], 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", output
            text.append(output.get("text", ""))
            data = output.get("data", {})
            text.append(data.get("text/markdown", ""))
            images += "image/png" in data
    joined = "\n".join(text)
    assert "cifar10_lt" in joined
    assert "| 9 | few |" in joined  # the per-class table
    assert "'resnet18'" in joined  # the hyper-parameters
    assert "backbone parameters: 224 " in joined  # 8*3*3*3 + 8, buffers excluded
    assert images == 2
