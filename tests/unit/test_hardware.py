"""Precision and CPU-count choices made from what the machine offers."""

import pytest

from ltcl.errors import ConfigError
from ltcl.run.config_checks import check_config
from ltcl.utils import hardware
from tests.helpers import compose_train


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_precision_on_cpu_follows_native_bf16(monkeypatch, native, expected):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native)
    precision, why = hardware.resolve_precision("auto", "cpu")
    assert precision == expected and why.startswith("auto")
    assert hardware.resolve_precision("32-true", "cpu")[0] == "32-true"


def test_usable_cores_honour_slurm(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert hardware.usable_cpu_cores() == 1


def test_more_cpu_processes_than_cores_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "usable_cpu_cores", lambda: 2)
    cfg = compose_train(tmp_path, ["trainer.devices=64", "data.global_batch_size=128"])
    with pytest.raises(
        ConfigError, match="trainer.devices=64 CPU processes but this job may use 2"
    ):
        check_config(cfg)


def test_precision_is_recorded(tmp_path):
    from ltcl.cli.train import train

    tiny = ["trainer.max_epochs=1", "eval.protocols=[knn]", "eval.plots=false"]
    results = train(compose_train(tmp_path, [*tiny, "model.backbone.width=8"]))
    expected = "bf16-mixed" if hardware.cpu_has_native_bf16() else "32-true"
    assert results["precision"] == expected


def test_threads_fit_the_cores_of_the_job(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(hardware, "usable_cpu_cores", lambda: 4)
    try:
        assert hardware.fit_threads_to_cores(2) == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert hardware.fit_threads_to_cores(2) is None  # the user's setting wins
    finally:
        torch.set_num_threads(before)
