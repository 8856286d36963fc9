"""submitit's SlurmLauncher that refuses an incomplete config before submitting anything."""

from __future__ import annotations

from typing import Any

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

from ltcl.run.launcher import check_slurm_commands, check_slurm_params


class CheckedSlurmLauncher(SlurmLauncher):
    """One SLURM job per run (a sweep is a job array); checks fields first (ltcl.run.launcher)."""

    def __init__(self, **params: Any) -> None:
        check_slurm_params(params)
        super().__init__(**params)

    def launch(self, job_overrides, initial_job_idx):
        check_slurm_commands()  # submitit's own error is a traceback from deep inside it
        return super().launch(job_overrides, initial_job_idx)
