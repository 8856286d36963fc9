"""The number a run returns to a sweeper (Optuna): a dotted path into results.json.

Checked before training against the protocols the run will evaluate, so that a 40-trial
search does not fail after its first trial. Tuning reads the validation split
(``val_metrics.*``, the held-out balanced validation images); ``metrics.*`` are test numbers
and are for reporting, never for choosing settings.
"""

from __future__ import annotations

from typing import Any

from ltcl.errors import ConfigError

GROUP_FIELDS = ("all", "many", "medium", "few", "std", "per_class_std")
# results.json protocol key -> the eval.protocols entry that produces it
PROTOCOL_OF = {"knn": "knn", "linear": "linear_b", "linear_a": "linear_a", "few_shot": "few_shot"}
VALIDATION_PROTOCOLS = ("knn", "linear")  # what val_metrics holds
EXAMPLES = "val_metrics.knn.all, val_metrics.linear.few, val_metrics.knn.std"


def is_test_metric(objective: str | None) -> bool:
    return bool(objective) and str(objective).startswith("metrics.")


def check_objective(objective: str | None, protocols: Any) -> None:
    """Raise ConfigError, before training, when `objective` cannot be read from the results."""
    if not objective:
        return
    protocols = list(protocols or [])
    parts = str(objective).split(".")
    where, protocol = parts[0], parts[1] if len(parts) > 1 else None
    if where not in ("metrics", "val_metrics") or protocol not in PROTOCOL_OF:
        raise ConfigError(
            f"objective={objective} is not a results.json metric: use "
            f"val_metrics.<knn|linear>.<{'|'.join(GROUP_FIELDS)}> (e.g. {EXAMPLES})"
        )
    if where == "val_metrics" and protocol not in VALIDATION_PROTOCOLS:
        raise ConfigError(
            f"objective={objective}: validation metrics exist for {VALIDATION_PROTOCOLS} only; "
            f"use e.g. {EXAMPLES}"
        )
    if PROTOCOL_OF[protocol] not in protocols:
        raise ConfigError(
            f"objective={objective} needs the {PROTOCOL_OF[protocol]} protocol but "
            f"eval.protocols={protocols}: add it (eval.protocols=[knn,linear_b]) or choose an "
            "objective of a protocol that runs"
        )
    field = parts[-1]
    expected_depth = 4 if protocol == "few_shot" else 3
    if len(parts) != expected_depth or field not in GROUP_FIELDS:
        raise ConfigError(
            f"objective={objective} does not end in a group field: use one of {GROUP_FIELDS}, "
            f"e.g. {EXAMPLES}"
        )


def objective_value(results: dict[str, Any], objective: str | None) -> float | None:
    """The value at `objective` in results; None on a non-zero rank or without an objective."""
    if not objective or not results:
        return None
    value: Any = results
    for part in str(objective).split("."):
        if not isinstance(value, dict) or part not in value:
            raise ConfigError(
                f"objective={objective} is not in results.json (no '{part}'): use e.g. "
                f"{EXAMPLES}, and make sure eval.protocols runs that protocol and the data "
                "has a validation split"
            )
        value = value[part]
    return float(value)


def in_sweep() -> bool:
    """True inside a Hydra multirun job (a sweep or an Optuna trial): only then does the
    objective matter."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_for_objective(cfg, run, results_of=lambda results: results):
    """A console command's body: inside a sweep, check the objective before training and return
    its value (what Optuna maximises); outside one, just run."""
    sweeping = in_sweep()
    if sweeping:
        check_objective(cfg.get("objective"), cfg.eval.protocols)
    results = run(cfg)
    return objective_value(results_of(results), cfg.get("objective")) if sweeping else None
