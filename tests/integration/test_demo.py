"""The demo (make demo's job): pretrain on the embedded data, evaluate, report."""

import json

from ltcl.cli.report import main as report_main
from ltcl.cli.train import train
from tests.helpers import compose_train


def test_demo_experiment_trains_evaluates_and_reports(tmp_path, capsys):
    cfg = compose_train(tmp_path, ["experiment=demo", "trainer.max_epochs=3"])
    results = train(cfg)
    run = tmp_path / "run"
    saved = json.loads((run / "results.json").read_text())
    assert saved == json.loads(json.dumps(results, default=float))
    assert set(saved["metrics"]) == {"knn", "linear", "few_shot"}
    assert set(saved["metrics"]["few_shot"]) == {"1pct", "100shot", "50shot"}
    assert report_main([str(run), "--metrics", "knn", "linear"]) == 0
    table = capsys.readouterr().out
    assert "| simclr | digits_lt | 1 |" in table
    assert (run / "report.md").is_file() and (run / "report.csv").is_file()


def test_demo_pipeline_experiment_composes_the_three_stages(tmp_path):
    from ltcl.cli.pipeline import planned_stages, stage_config

    cfg = compose_train(tmp_path, ["experiment=demo_pipeline"], config_name="pipeline")
    assert planned_stages(cfg) == ["guide", "student", "simclr"]
    epochs = {s: stage_config(cfg, s, tmp_path).trainer.max_epochs for s in planned_stages(cfg)}
    assert epochs == {"guide": 20, "student": 20, "simclr": 40}
    assert stage_config(cfg, "guide", tmp_path).ood.name == "photo_crops"
    assert stage_config(cfg, "student", tmp_path).method.name == "student"
