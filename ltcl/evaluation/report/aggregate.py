"""Collect the `results.json` of many runs and summarise them as mean ± std tables.

The peers report every number as mean ± *population* std (``np.std``, ddof 0) over the
long-tailed splits (the peers do), so that is what the summary computes; the per-run table
sits under it so that an outlier split can be traced back to its directory.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ltcl.errors import DataError

RESULTS_NAME = "results.json"
# The numbers a protocol reports; Std is the population std of (many, medium, few).
FIELDS = ("all", "many", "medium", "few", "std")
DEFAULT_METRICS = ("knn", "linear")
DEFAULT_GROUP_BY = ("method", "dataset")
_LABELS = {"knn": "kNN", "linear": "linear", "linear_a": "linear A"}
_FIELD_LABELS = {"all": "all", "many": "many", "medium": "medium", "few": "few", "std": "Std"}


def find_results(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Every results.json under the given run / multirun directories (or the files themselves).

    The search is recursive because a Hydra multirun nests run directories, and an
    evaluation may sit below its training run (``<run>/eval/results.json``).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise DataError("no path given: pass a run or multirun directory of ltcl-train/ltcl-eval")
    found: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise DataError(f"{path} does not exist: pass a run or multirun directory")
        if path.is_file():
            candidates = [path]
        else:
            candidates = sorted(path.rglob(RESULTS_NAME))
        for candidate in candidates:
            key = candidate.resolve()
            if key not in seen and candidate.is_file():
                seen.add(key)
                found.append(candidate)
    if not found:
        where = ", ".join(str(p) for p in paths)
        raise DataError(
            f"no {RESULTS_NAME} under {where}: pass a run or multirun directory of "
            "ltcl-train/ltcl-eval"
        )
    return found


def load_results(files: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """Parse each results.json and record where it came from under the key "path"."""
    runs = []
    for file in files:
        file = Path(file)
        try:
            run = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(
                f"{file} is not a readable JSON file ({err}): delete it or rerun that run"
            ) from err
        if not isinstance(run, dict) or not isinstance(run.get("metrics"), dict):
            raise DataError(
                f"{file} has no 'metrics' object: it is not a results.json of ltcl-train/ltcl-eval"
            )
        run["path"] = str(file)
        runs.append(run)
    return runs


def protocol_metrics(run: dict[str, Any], protocol: str) -> dict[str, Any] | None:
    """The metrics dict of a protocol, or None if the run did not evaluate it.

    A dotted name reaches into nested entries, e.g. ``few_shot.100shot``.
    """
    node: Any = run.get("metrics", {})
    for part in protocol.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, dict) else None


def _number(value: Any) -> float | None:
    """A finite float, or None for a missing / NaN entry (left out of the mean, not zeroed)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _mean_std(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=0)), "n": len(values)}


def _hashable(value: Any) -> Any:
    """Group keys must be hashable; a list or dict (hand-edited results.json) becomes text."""
    return value if isinstance(value, str | int | float | bool | None) else json.dumps(value)


def lookup(run: dict[str, Any], key: str) -> Any:
    """``run[key]``; a dotted key reaches into nested dicts (``config.method.sampler.strategy``)."""
    if key in run:
        return run[key]
    value: Any = run
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _sorted_unique(values: Iterable[Any]) -> list[Any]:
    """Numbers in numeric order, anything else (a hand-named split) after them by text."""
    unique = {_hashable(v) for v in values if v is not None}
    numbers = sorted(v for v in unique if isinstance(v, int | float))
    others = sorted((v for v in unique if not isinstance(v, int | float)), key=str)
    return numbers + others


def aggregate(
    runs: Sequence[dict[str, Any]],
    metrics: Sequence[str] = DEFAULT_METRICS,
    group_by: Sequence[str] = DEFAULT_GROUP_BY,
) -> list[dict[str, Any]]:
    """One row per group of runs: the group keys, n, seeds seen and mean/std/n of each number.

    ``row["metrics"][protocol][field]`` is ``{"mean", "std", "n"}``, or None where no run of
    the group has that number (a protocol that was not run is not an error).
    """
    if not metrics:
        raise DataError("no metric to report: pass e.g. metrics=('knn', 'linear')")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        key = tuple(_hashable(lookup(run, k)) for k in group_by)
        groups.setdefault(key, []).append(run)
    rows = []
    for key in sorted(groups, key=lambda k: tuple(str(v) for v in k)):
        members = groups[key]
        row: dict[str, Any] = dict(zip(group_by, key, strict=True))
        row["n"] = len(members)
        row["split_seeds"] = _sorted_unique(r.get("split_seed") for r in members)
        row["seeds"] = _sorted_unique(r.get("seed") for r in members)
        row["metrics"] = {}
        for protocol in metrics:
            per_field = {}
            for field in FIELDS:
                values = []
                for run in members:
                    found = protocol_metrics(run, protocol)
                    value = _number(found.get(field)) if found else None
                    if value is not None:
                        values.append(value)
                per_field[field] = _mean_std(values)
            has_any = any(v is not None for v in per_field.values())
            row["metrics"][protocol] = per_field if has_any else None
        rows.append(row)
    return rows


def _group_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    reserved = {"n", "split_seeds", "seeds", "metrics"}
    return [k for k in rows[0] if k not in reserved] if rows else list(DEFAULT_GROUP_BY)


def _protocols(rows: Sequence[dict[str, Any]]) -> list[str]:
    protocols: list[str] = []
    for row in rows:
        for protocol in row["metrics"]:
            if protocol not in protocols:
                protocols.append(protocol)
    return protocols


def _label(protocol: str) -> str:
    return _LABELS.get(protocol, protocol)


def _cell(value: Any) -> str:
    text = "–" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def _fmt_seeds(values: Sequence[Any]) -> str:
    return ",".join(str(v) for v in values) if values else "–"


SPLIT_KEYS = {"test": "metrics", "val": "val_metrics"}  # which results.json entry a split is


def select_split(runs: Sequence[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    """The runs with ``metrics`` taken from the chosen split (test, or val for tuning)."""
    if split not in SPLIT_KEYS:
        raise DataError(f"unknown split '{split}': use test or val")
    return [{**run, "metrics": run.get(SPLIT_KEYS[split]) or {}} for run in runs]


def to_markdown(
    rows: Sequence[dict[str, Any]],
    per_run: Sequence[dict[str, Any]] | None = None,
    split: str = "test",
) -> str:
    """A summary table with ``mean ± std`` cells, then (if given) one line per run.

    A cell computed from fewer runs than its row's n says so, e.g. ``(n=2)``, so that a
    missing evaluation is not silently averaged away.
    """
    keys = _group_keys(rows)
    protocols = [p for p in _protocols(rows) if any(r["metrics"].get(p) for r in rows)]
    header = [*keys, "n", "split seeds", "seeds"]
    for protocol in protocols:
        header += [f"{_label(protocol)} all ({split})"] + [_FIELD_LABELS[f] for f in FIELDS[1:]]
    body = []
    for row in rows:
        cells = [_cell(row.get(k)) for k in keys]
        cells += [str(row["n"]), _fmt_seeds(row["split_seeds"]), _fmt_seeds(row["seeds"])]
        for protocol in protocols:
            stats = row["metrics"].get(protocol) or {}
            for field in FIELDS:
                s = stats.get(field)
                if s is None:
                    cells.append("–")
                    continue
                text = f"{s['mean']:.2f} ± {s['std']:.2f}"
                if s["n"] != row["n"]:
                    text += f" (n={s['n']})"
                cells.append(text)
        body.append(cells)
    parts = ["## Summary (mean ± population std over runs)", "", _table(header, body)]
    if per_run:
        parts += ["", _per_run_markdown(per_run, keys, protocols, split)]
    return "\n".join(parts) + "\n"


def _per_run_markdown(
    runs: Sequence[dict[str, Any]], keys: list[str], protocols: list[str], split: str = "test"
) -> str:
    # Paths relative to their common directory keep the table narrow.
    paths = [Path(r.get("path", "?")) for r in runs]
    try:
        root = Path(os.path.commonpath([p.parent.resolve() for p in paths]))
    except ValueError:
        root = None

    def shown(path: Path) -> str:
        if root is None:
            return str(path)
        try:
            return str(path.resolve().relative_to(root))
        except ValueError:
            return str(path)

    header = ["path", *keys, "split_seed", "seed", "epochs"]
    for protocol in protocols:
        header += [f"{_label(protocol)} all ({split})"] + [_FIELD_LABELS[f] for f in FIELDS[1:]]
    order = sorted(
        range(len(runs)),
        key=lambda i: (tuple(str(lookup(runs[i], k)) for k in keys), shown(paths[i])),
    )
    body = []
    for i in order:
        run = runs[i]
        cells = [_cell(shown(paths[i]))] + [_cell(lookup(run, k)) for k in keys]
        cells += [_cell(run.get("split_seed")), _cell(run.get("seed")), _cell(run.get("epochs"))]
        for protocol in protocols:
            found = protocol_metrics(run, protocol) or {}
            for field in FIELDS:
                value = _number(found.get(field))
                cells.append("–" if value is None else f"{value:.2f}")
        body.append(cells)
    title = "## Runs" + (f" (paths relative to {root})" if root is not None else "")
    return "\n".join([title, "", _table(header, body)])


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """One line per group and one column per number (full precision) for a spreadsheet.

    Columns are ``<protocol>_<field>_{mean,std,n}``; an empty cell means "not run".
    """
    keys = _group_keys(rows)
    protocols = _protocols(rows)
    columns = [*keys, "n", "split_seeds", "seeds"]
    for protocol in protocols:
        for field in FIELDS:
            columns += [f"{protocol}_{field}_{stat}" for stat in ("mean", "std", "n")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        line: list[Any] = [row.get(k, "") for k in keys]
        line += [row["n"], " ".join(map(str, row["split_seeds"])), " ".join(map(str, row["seeds"]))]
        for protocol in protocols:
            stats = row["metrics"].get(protocol) or {}
            for field in FIELDS:
                s = stats.get(field)
                line += ["", "", ""] if s is None else [repr(s["mean"]), repr(s["std"]), s["n"]]
        writer.writerow(["" if v is None else v for v in line])
    return buffer.getvalue()
