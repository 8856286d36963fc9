"""SLURM launching (hydra/launcher=slurm): submitit's Hydra launcher with checks up front.

hydra-submitit-launcher submits one job per run (a sweep becomes a job array) and, with
``max_num_timeout``, requeues a job that timed out or was preempted; ltcl-train then resumes
from the run directory's ``last.ckpt``. The launcher class itself is
``hydra_plugins.ltcl_slurm_launcher.launcher.CheckedSlurmLauncher`` (Hydra loads launchers only
from the ``hydra_plugins`` package); it adds what a user needs before any job is queued: an
error that names a missing field and how to set it (:func:`check_slurm_params`).
"""

from __future__ import annotations

from typing import Any

from ltcl.errors import ConfigError

REQUIRED = {
    "partition": "the SLURM partition (sinfo lists them), e.g. hydra.launcher.partition=gpu",
    "timeout_min": "the job's time limit in minutes, e.g. hydra.launcher.timeout_min=1440",
    "nodes": "the number of nodes (set by trainer.num_nodes)",
    "tasks_per_node": "one task per GPU (set by trainer.devices)",
    "gpus_per_node": "GPUs per node (set by trainer.devices)",
}


def check_slurm_params(params: dict[str, Any]) -> None:
    """Raise ConfigError naming every required field that is unset, and how to set it."""
    missing = [key for key in REQUIRED if params.get(key) in (None, "", "???")]
    if missing:
        lines = "; ".join(f"hydra.launcher.{key}: {REQUIRED[key]}" for key in missing)
        raise ConfigError(f"the SLURM launcher config is missing {missing}: {lines}")
    if params["tasks_per_node"] != params["gpus_per_node"]:
        raise ConfigError(
            f"hydra.launcher.tasks_per_node={params['tasks_per_node']} but gpus_per_node="
            f"{params['gpus_per_node']}: Lightning's DDP needs one SLURM task per GPU"
        )


def check_slurm_commands() -> None:
    """Raise ConfigError when ``sbatch`` or ``srun`` is not on PATH (not a SLURM node)."""
    import shutil

    missing = [command for command in ("sbatch", "srun") if shutil.which(command) is None]
    if missing:
        raise ConfigError(
            f"hydra/launcher=slurm submits SLURM jobs, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not on PATH here: run the command on a "
            "SLURM login node, or leave out hydra/launcher=slurm to run on this machine"
        )


def render_sbatch(params: dict[str, Any], command: str = "python -m ltcl.cli.train") -> str:
    """The sbatch script that submitit would write for these launcher params, without
    submitting anything (submitit's executor itself refuses to start without ``srun``).

    Uses submitit's own name mapping (timeout_min -> --time, tasks_per_node ->
    --ntasks-per-node, mem_gb -> --mem, ...) and its sbatch template.
    """
    import inspect

    from submitit.slurm import slurm

    check_slurm_params(params)
    generic = slurm.SlurmExecutor._equivalence_dict()
    accepted = set(inspect.signature(slurm._make_sbatch_string).parameters)
    converted: dict[str, Any] = {}
    for key, value in params.items():
        key = generic.get(key, key)
        if key == "mem" and value is not None:
            value = slurm._convert_mem(value)
        if key in accepted and key not in ("command", "folder") and value is not None:
            converted[key] = value
    return slurm._make_sbatch_string(
        command=command, folder=params.get("submitit_folder", "."), **converted
    )
