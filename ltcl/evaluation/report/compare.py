"""Figures and a LaTeX table that set several methods side by side, over splits.

What a long-tail paper shows: per-class accuracy against the class's training count, head to
tail, one line per method with a mean ± std band over splits; many / medium / few bars with
error bars; each method's difference to a baseline per class group, paired by split; and the
table in booktabs LaTeX. Classes are compared by *rank* (the k-th most frequent class of each
split), since a split may order the classes differently; the x value is that rank's training
count.
"""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ltcl.errors import DataError
from ltcl.evaluation.report.aggregate import lookup, protocol_metrics
from ltcl.evaluation.report.plots import GROUPS, _new_figure, _save, _style

PER_CLASS_KEYS = {"knn": "knn_acc", "linear": "linear_acc", "linear_a": "linear_a_acc"}
LABELS = {"knn": "kNN", "linear": "probe (b)", "linear_a": "probe (a)"}


def method_of(run: dict[str, Any], group_by: Sequence[str] = ("method",)) -> str:
    return " / ".join(str(lookup(run, key)) for key in group_by)


def by_method(
    runs: Sequence[dict[str, Any]], group_by: Sequence[str] = ("method",)
) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        grouped.setdefault(method_of(run, group_by), []).append(run)
    return grouped


def per_class_by_rank(runs: Sequence[dict[str, Any]], protocol: str) -> dict[str, np.ndarray]:
    """For runs of one method: ``count`` (training images of the k-th most frequent class,
    mean over runs), ``mean`` and ``std`` (population) of that class's accuracy over runs."""
    key = PER_CLASS_KEYS.get(protocol)
    rows, counts = [], []
    for run in runs:
        per_class = run.get("per_class") or {}
        if key not in per_class or "train_count" not in per_class:
            continue
        count = np.asarray(per_class["train_count"], dtype=float)
        order = np.argsort(-count, kind="stable")
        rows.append(np.asarray(per_class[key], dtype=float)[order])
        counts.append(count[order])
    if not rows:
        raise DataError(
            f"no run has per-class {protocol} accuracies (results.json per_class.{key}): "
            "choose a protocol the runs evaluated"
        )
    if len({len(r) for r in rows}) != 1:
        raise DataError("the runs have different numbers of classes: compare one dataset at a time")
    stack = np.stack(rows)
    return {
        "count": np.stack(counts).mean(axis=0),
        "mean": stack.mean(axis=0),
        "std": stack.std(axis=0),
        "n": np.full(stack.shape[1], len(rows)),
    }


def group_scores(runs: Sequence[dict[str, Any]], protocol: str) -> dict[str, list[float]]:
    """{group: one value per run} for many / medium / few and all."""
    out: dict[str, list[float]] = {}
    for run in runs:
        metrics = protocol_metrics(run, protocol) or {}
        for group in ("all", *GROUPS):
            if isinstance(metrics.get(group), int | float):
                out.setdefault(group, []).append(float(metrics[group]))
    return out


def paired_differences(
    runs: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]], protocol: str
) -> dict[str, list[float]]:
    """{group: method - baseline on each split both have} (paired by split seed)."""
    base = {r.get("split_seed"): protocol_metrics(r, protocol) or {} for r in baseline}
    out: dict[str, list[float]] = {}
    for run in runs:
        other = base.get(run.get("split_seed"))
        mine = protocol_metrics(run, protocol) or {}
        if other is None:
            continue
        for group in ("all", *GROUPS):
            if isinstance(mine.get(group), int | float) and isinstance(
                other.get(group), int | float
            ):
                out.setdefault(group, []).append(float(mine[group]) - float(other[group]))
    return out


def plot_per_class_comparison(
    grouped: dict[str, list[dict[str, Any]]], protocol: str, path: str | os.PathLike
):
    """Per-class accuracy against training count, head (left) to tail, a band per method."""
    with _style():
        fig = _new_figure(9.5, 4.5)
        ax = fig.add_subplot()
        for method, runs in grouped.items():
            curve = per_class_by_rank(runs, protocol)
            x = np.arange(len(curve["count"]))
            line = ax.plot(x, curve["mean"], marker="o", label=f"{method} (n={curve['n'][0]})")[0]
            ax.fill_between(
                x, curve["mean"] - curve["std"], curve["mean"] + curve["std"],
                color=line.get_color(), alpha=0.2,
            )  # fmt: skip
        ax.set_xticks(x, [f"{int(round(c))}" for c in curve["count"]], rotation=45)
        ax.set_xlabel("training images of the class (head → tail)")
        ax.set_ylabel(f"{LABELS.get(protocol, protocol)} accuracy (%)")
        ax.set_title(f"Per-class {LABELS.get(protocol, protocol)} accuracy, mean ± std over splits")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        _save(fig, path)
    return fig


def _bars(ax, values: dict[str, dict[str, list[float]]], groups: Sequence[str]) -> None:
    methods = list(values)
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(groups))
    for i, method in enumerate(methods):
        means = [statistics.fmean(values[method].get(g) or [np.nan]) for g in groups]
        stds = [
            statistics.pstdev(values[method][g]) if len(values[method].get(g) or []) > 1 else 0.0
            for g in groups
        ]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=stds, capsize=3,
               label=method)  # fmt: skip
    ax.set_xticks(x, list(groups))


def plot_group_comparison(
    grouped: dict[str, list[dict[str, Any]]], protocol: str, path: str | os.PathLike
):
    """Many / medium / few (and all) bars per method, error bars = std over splits."""
    with _style():
        fig = _new_figure(9.5, 4.5)
        ax = fig.add_subplot()
        values = {m: group_scores(runs, protocol) for m, runs in grouped.items()}
        _bars(ax, values, ("all", *GROUPS))
        ax.set_ylabel(f"{LABELS.get(protocol, protocol)} accuracy (%)")
        ax.set_title(f"{LABELS.get(protocol, protocol)} by class group, mean ± std over splits")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        _save(fig, path)
    return fig


def plot_difference_to_baseline(
    grouped: dict[str, list[dict[str, Any]]],
    baseline: str,
    protocol: str,
    path: str | os.PathLike,
):
    """Each method minus the baseline per class group, paired by split (mean ± std)."""
    if baseline not in grouped:
        raise DataError(
            f"--baseline {baseline!r} is not among the runs' methods {sorted(grouped)}: "
            "choose one of them"
        )
    with _style():
        fig = _new_figure(9.5, 4.5)
        ax = fig.add_subplot()
        values = {
            m: paired_differences(runs, grouped[baseline], protocol)
            for m, runs in grouped.items()
            if m != baseline
        }
        _bars(ax, values, ("all", *GROUPS))
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_ylabel(f"{LABELS.get(protocol, protocol)} − {baseline} (points)")
        ax.set_title(f"Difference to {baseline}, paired by split (mean ± std)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        _save(fig, path)
    return fig


def resolve_baseline(grouped: dict[str, list[dict[str, Any]]], baseline: str | None) -> str:
    """The group whose method (its first group-by value) is ``baseline`` (default: SimCLR,
    else the first group)."""
    wanted = (baseline or "simclr").lower()
    for name in grouped:
        if name.lower() == wanted or name.split(" / ")[0].lower() == wanted:
            return name
    if baseline is None:
        return next(iter(grouped))
    raise DataError(
        f"--baseline {baseline!r} is not among the runs' methods {sorted(grouped)}: choose one "
        "of them"
    )


def _tex(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"),
                          ("_", r"\_"), ("#", r"\#"), ("$", r"\$")):  # fmt: skip
        text = text.replace(char, escaped)
    return text


def to_latex(
    grouped: dict[str, list[dict[str, Any]]], protocols: Sequence[str], split: str = "test"
) -> str:
    """A booktabs table: one row per method, All / Many / Medium / Few per protocol as
    mean ± std over the runs (population std), the best mean of each column in bold."""
    columns = [(p, g) for p in protocols for g in ("all", *GROUPS)]
    cells: dict[str, list[tuple[float, float] | None]] = {}
    for method, runs in grouped.items():
        row = []
        for protocol, group in columns:
            values = group_scores(runs, protocol).get(group) or []
            row.append((statistics.fmean(values), statistics.pstdev(values)) if values else None)
        cells[method] = row
    best = [
        max((r[i][0] for r in cells.values() if r[i] is not None), default=None)
        for i in range(len(columns))
    ]
    head1 = " & ".join(
        rf"\multicolumn{{4}}{{c}}{{{_tex(LABELS.get(p, p))} ({split})}}" for p in protocols
    )
    rules = " ".join(rf"\cmidrule(lr){{{2 + 4 * i}-{5 + 4 * i}}}" for i in range(len(protocols)))
    head2 = " & ".join("All & Many & Medium & Few" for _ in protocols)
    lines = [
        r"\begin{tabular}{l" + "c" * len(columns) + "}",
        r"\toprule",
        rf"Method & {head1} \\",
        rules,
        rf" & {head2} \\",
        r"\midrule",
    ]
    for method, row in cells.items():
        out = []
        for i, cell in enumerate(row):
            if cell is None:
                out.append("--")
                continue
            text = rf"{cell[0]:.2f} $\pm$ {cell[1]:.2f}"
            out.append(
                rf"\textbf{{{text}}}" if best[i] is not None and cell[0] == best[i] else text
            )
        n = len(grouped[method])
        lines.append(rf"{_tex(method)} ($n={n}$) & " + " & ".join(out) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_comparison(
    runs: Sequence[dict[str, Any]],
    out: str | os.PathLike,
    protocols: Sequence[str],
    group_by: Sequence[str] = ("method",),
    baseline: str | None = None,
) -> list[Path]:
    """The comparison figures for each protocol that has per-class numbers; returns paths."""
    out = Path(out)
    grouped = by_method(runs, group_by)
    baseline = resolve_baseline(grouped, baseline)
    written = []
    for protocol in protocols:
        if protocol not in PER_CLASS_KEYS or not any(protocol_metrics(r, protocol) for r in runs):
            continue
        figures = [(f"compare_groups_{protocol}.png", plot_group_comparison, (grouped, protocol))]
        with_counts = {
            m: [r for r in rs if PER_CLASS_KEYS[protocol] in (r.get("per_class") or {})]
            for m, rs in grouped.items()
        }
        with_counts = {m: rs for m, rs in with_counts.items() if rs}
        if with_counts:
            figures.insert(0, (f"compare_per_class_{protocol}.png", plot_per_class_comparison,
                               (with_counts, protocol)))  # fmt: skip
        if len(grouped) > 1:
            name = f"compare_vs_{baseline.replace(' ', '_').replace('/', '-')}_{protocol}.png"
            figures.append((name, plot_difference_to_baseline, (grouped, baseline, protocol)))
        for name, draw, arguments in figures:
            try:
                draw(*arguments, out / name)
            except DataError as error:  # the tables are still worth writing without it
                print(f"[ltcl-report] no {name}: {error}", file=sys.stderr)
                continue
            written.append(out / name)
    return written
