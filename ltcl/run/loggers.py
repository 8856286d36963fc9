"""Loggers of a run (CSV, wandb): built from the config, resumed with the run, given the results.

wandb needs care on clusters: an online run without an API key hangs, and a requeued job must
continue its own wandb run (the id is kept in the run directory).
"""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from ltcl.errors import ConfigError
from ltcl.run.instantiate import build
from ltcl.utils.files import atomic_write_text

WANDB_ID_FILE = "wandb_run_id"


def _is_wandb(node: Any) -> bool:
    return str(node.get("_target_", "")).endswith("WandbLogger")


def check_wandb_credentials(node: Any) -> None:
    """An online wandb run without an API key would hang or fail mid-run: refuse it up front."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if node.get("offline") or mode in ("offline", "disabled", "dryrun"):
        return
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if os.environ.get("WANDB_API_KEY") or (
        netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")
    ):
        check_wandb_reachable()
        return
    raise ConfigError(
        "logger=wandb logs online but no W&B API key was found: set WANDB_API_KEY or run "
        "`wandb login`; on a cluster without network use WANDB_MODE=offline and "
        "`wandb sync <run dir>/wandb/offline-run-*` later"
    )


def check_wandb_reachable(timeout_s: float = 5.0) -> None:
    """An online run on a machine that cannot reach the W&B server would fail after about two
    minutes, inside wandb, with a traceback: try a connection first (a few seconds at most)."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    host, port = url.hostname or "api.wandb.ai", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as error:
        raise ConfigError(
            f"logger=wandb logs online but {host}:{port} cannot be reached from this machine "
            f"({type(error).__name__}: {error}): use WANDB_MODE=offline and `wandb sync <run "
            "dir>/wandb/offline-run-*` from a machine with network, or logger=csv"
        ) from None


def wandb_run_id(out: Path, resuming: bool) -> str:
    """The run's wandb id, kept in <run dir>/wandb_run_id so that a resumed (requeued) job
    continues the same wandb run; a fresh start gets a new id."""
    path = out / WANDB_ID_FILE
    if resuming and path.is_file():
        return path.read_text(encoding="utf-8").strip()
    # wandb's own id format (8 characters of [a-z0-9]); its generator is not public API.
    run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    if rank_zero_only.rank == 0:  # only rank zero logs to wandb
        atomic_write_text(path, run_id)
    return run_id


def build_loggers(cfg: DictConfig, resuming: bool = False) -> list:
    loggers = []
    for node in (cfg.get("logger") or {}).values():
        if _is_wandb(node):
            check_wandb_credentials(node)
            loggers.append(
                build(node, id=wandb_run_id(Path(cfg.paths.output_dir), resuming), resume="allow")
            )
        else:
            loggers.append(build(node))
    return loggers


def log_results(loggers: list, results: dict[str, Any], out: Path) -> None:
    """The final metrics (and, for wandb, the results table and plots) to every logger."""
    flat = {
        f"results/{protocol}/{field}": value
        for protocol, values in (results.get("metrics") or {}).items()
        if isinstance(values, dict)
        for field, value in values.items()
        if isinstance(value, int | float)
    }
    for logger in loggers:
        if flat:
            logger.log_metrics(flat)
        if type(logger).__name__ == "WandbLogger":
            rows = [
                [p, *(v.get(f) for f in ("all", "many", "medium", "few", "std"))]
                for p, v in (results.get("metrics") or {}).items()
                if isinstance(v, dict) and "all" in v
            ]
            if rows:
                columns = ["protocol", "all", "many", "medium", "few", "std"]
                logger.log_table(key="results/table", columns=columns, data=rows)
            plots = sorted(str(p) for p in out.glob("*.png"))
            if plots:
                logger.log_image(key="results/plots", images=plots)
            log_per_class_charts(logger, results)


def log_per_class_charts(logger, results: dict[str, Any]) -> None:
    """Per-class test accuracy, head to tail, as a wandb bar chart per protocol (a chart in
    the run's workspace, not a PNG: runs can be compared there)."""
    import wandb

    per_class = results.get("per_class") or {}
    counts = per_class.get("train_count") or []
    order = sorted(range(len(counts)), key=lambda c: -counts[c])
    for key, values in per_class.items():
        if not key.endswith("_acc") or len(values) != len(counts):
            continue
        protocol = key.removesuffix("_acc")
        rows = [[f"{c} ({counts[c]})", float(values[c]), int(counts[c])] for c in order]
        table = wandb.Table(data=rows, columns=["class (training images)", "accuracy", "count"])
        chart = wandb.plot.bar(
            table, "class (training images)", "accuracy",
            title=f"per-class {protocol} accuracy (test), head to tail",
        )  # fmt: skip
        logger.experiment.log({f"results/per_class_{protocol}": chart})
