"""PNG figures of one run, written next to its results.json.

Figures are drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas instead of
pyplot: no display is needed, no global backend is switched (a notebook importing this
module keeps its own), and no figure stays open in pyplot's registry after a long sweep.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ltcl.errors import ConfigError, DataError

DPI = 150
GROUPS = ("many", "medium", "few")
GROUP_COLOURS = {"many": "tab:blue", "medium": "tab:orange", "few": "tab:red", None: "tab:gray"}
# "linear" is the BCL probe (protocol B), "linear_a" the SDCLR/COLT one (docs/method.md, Evaluation).
PROTOCOL_MARKERS = {"knn": "o", "linear": "s", "linear_a": "^"}
PROTOCOL_LABELS = {"knn": "kNN", "linear": "linear probe B", "linear_a": "linear probe A"}
_STYLE = {
    "font.size": 11,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "legend.fontsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


@contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context(_STYLE):
        yield


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _title(results: dict[str, Any]) -> str:
    parts = [str(results.get("method", "?")), "on", str(results.get("dataset", "?"))]
    details = []
    if results.get("imbalance_ratio") is not None:
        details.append(f"ρ={results['imbalance_ratio']}")
    for key, name in (("split_seed", "split"), ("seed", "seed"), ("epochs", "epochs")):
        if results.get(key) is not None:
            details.append(f"{name} {results[key]}")
    return " ".join(parts) + (f" ({', '.join(details)})" if details else "")


def _class_group(results: dict[str, Any], num_classes: int) -> list[str | None]:
    """The group of each class, None for a class in no group (or no groups recorded)."""
    groups = results.get("class_groups") or {}
    out: list[str | None] = [None] * num_classes
    for name in GROUPS:
        for c in groups.get(name) or []:
            if isinstance(c, int) and 0 <= c < num_classes:
                out[c] = name
    return out


def _per_class_series(results: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    per_class = results.get("per_class")
    if not isinstance(per_class, dict) or not per_class.get("train_count"):
        raise DataError(
            "results has no per_class.train_count: plot a results.json written by "
            "ltcl-train/ltcl-eval (it records the training count of each class)"
        )
    counts = np.asarray(per_class["train_count"], dtype=np.float64)
    series = {}
    for protocol in PROTOCOL_MARKERS:
        acc = per_class.get(f"{protocol}_acc")
        if acc is None:
            continue
        acc = np.asarray([np.nan if a is None else a for a in acc], dtype=np.float64)
        if acc.shape != counts.shape:
            raise DataError(
                f"per_class.{protocol}_acc has {acc.size} entries but per_class.train_count has "
                f"{counts.size}: the results.json is inconsistent, rerun the evaluation"
            )
        series[protocol] = acc
    if not series:
        raise DataError(
            "results has no per_class.knn_acc / linear_acc / linear_a_acc: run the kNN or "
            "linear evaluation before plotting per-class accuracy"
        )
    return counts, series


def plot_per_class_accuracy(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """Per-class accuracy against training count (log x): does accuracy follow frequency?

    Colours are the many / medium / few groups and marker shapes the protocols, so one
    glance shows both the long-tail trend and which classes fall behind.
    """
    counts, series = _per_class_series(results)
    num_classes = counts.size
    groups = _class_group(results, num_classes)
    colours = [GROUP_COLOURS[g] for g in groups]
    # Label every point only while that stays legible; above 40 classes only the first protocol.
    annotate_size = 8 if num_classes <= 20 else 6 if num_classes <= 40 else 5
    with _style():
        fig = _new_figure(9.0, 5.0)
        ax = fig.add_subplot()
        for i, (protocol, acc) in enumerate(series.items()):
            ax.scatter(
                counts,
                acc,
                c=colours,
                marker=PROTOCOL_MARKERS[protocol],
                s=40 if num_classes <= 40 else 20,
                edgecolors="black",
                linewidths=0.5,
                alpha=0.85,
                zorder=3,
            )
            if i == 0 or num_classes <= 40:
                for c in range(num_classes):
                    if np.isfinite(acc[c]):
                        ax.annotate(
                            str(c),
                            (counts[c], acc[c]),
                            textcoords="offset points",
                            xytext=(4, 3),
                            fontsize=annotate_size,
                            color="0.25",
                        )
        if np.all(counts > 0):
            ax.set_xscale("log")
        else:  # a class with no training image cannot sit on a log axis
            ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("training images of the class (log scale)")
        ax.set_ylabel("test accuracy of the class (%)")
        ax.set_ylim(-2, 102)
        ax.set_title(f"Per-class accuracy — {_title(results)}")
        handles = [
            Line2D(
                [],
                [],
                linestyle="",
                marker=PROTOCOL_MARKERS[p],
                color="white",
                markeredgecolor="black",
                markersize=8,
                label=PROTOCOL_LABELS[p],
            )
            for p in series
        ]
        present = [g for g in (*GROUPS, None) if g in groups]
        handles += [
            Line2D(
                [],
                [],
                linestyle="",
                marker="o",
                color=GROUP_COLOURS[g],
                markersize=8,
                label=g if g is not None else "no group",
            )
            for g in present
        ]
        # Outside the axes: with 100 classes there is no empty corner to put it in.
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            title="protocol / group",
            frameon=False,
        )
        return _save(fig, path)


def _bar_protocols(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, metrics) of every protocol that was run, few-shot subsets included."""
    metrics = results.get("metrics") or {}
    out = []
    for protocol in PROTOCOL_LABELS:
        if isinstance(metrics.get(protocol), dict) and metrics[protocol]:
            out.append((PROTOCOL_LABELS[protocol], metrics[protocol]))
    few_shot = metrics.get("few_shot")
    if isinstance(few_shot, dict):
        for name, values in few_shot.items():
            if isinstance(values, dict) and values:
                out.append((f"few-shot {name}", values))
    return out


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def plot_group_bars(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """Many / medium / few / all accuracy side by side per protocol, Std in the legend.

    The gap between the bars is what the method tries to close; Std (population std of
    many, medium, few) summarises that gap as one number.
    """
    protocols = _bar_protocols(results)
    if not protocols:
        raise DataError(
            "results has no metrics.knn / metrics.linear: plot a results.json written by "
            "ltcl-train/ltcl-eval after an evaluation"
        )
    categories = ("many", "medium", "few", "all")
    x = np.arange(len(categories))
    width = 0.8 / len(protocols)
    with _style():
        fig = _new_figure(max(7.0, 1.2 * len(protocols) + 5.0), 4.8)
        ax = fig.add_subplot()
        top = 0.0
        for i, (label, values) in enumerate(protocols):
            heights = [_finite(values.get(c)) for c in categories]
            bars = ax.bar(
                x + (i - (len(protocols) - 1) / 2) * width,
                [np.nan if h is None else h for h in heights],
                width=width * 0.95,
                label=_bar_label(label, values),
                zorder=3,
            )
            ax.bar_label(
                bars,
                labels=["" if h is None else f"{h:.1f}" for h in heights],
                fontsize=7 if len(protocols) > 2 else 8,
                padding=2,
            )
            top = max([top, *(h for h in heights if h is not None)])
        ax.set_xticks(x, [c if c != "all" else "all (mean per class)" for c in categories])
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, max(100.0, top) * 1.08)
        ax.set_title(f"Accuracy by class group — {_title(results)}")
        # Below the axes so that it never hides a bar.
        ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.1),
            ncol=min(len(protocols), 3),
            title="protocol (Std = population std of many / medium / few)",
            frameon=False,
        )
        ax.grid(axis="x", visible=False)
        return _save(fig, path)


def _bar_label(label: str, values: dict[str, Any]) -> str:
    parts = []
    std = _finite(values.get("std"))
    if std is not None:
        parts.append(f"Std {std:.2f}")
    per_class_std = _finite(values.get("per_class_std"))
    if per_class_std is not None:
        parts.append(f"per-class std {per_class_std:.2f}")
    return f"{label} ({', '.join(parts)})" if parts else label


def plot_embedding_2d(
    features: np.ndarray,
    labels: np.ndarray,
    path: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    method: str = "pca",
    max_points: int = 5000,
    seed: int = 0,
) -> Path:
    """A 2-D projection of test embeddings coloured by class: are the tail classes separated?

    PCA (default) is fast and deterministic; t-SNE shows local clusters better but costs
    O(n log n) per iteration, so both are drawn on at most ``max_points`` random points.
    """
    if method not in ("pca", "tsne"):
        raise ConfigError(f"embedding method must be 'pca' or 'tsne', got {method!r}")
    if max_points < 3:
        raise ConfigError(f"max_points must be >= 3, got {max_points}")
    features = np.asarray(features)
    labels = np.asarray(labels).reshape(-1)
    if features.ndim != 2:
        raise DataError(
            f"features must be a 2-D array (images x dims), got shape {features.shape}: "
            "flatten or pool the backbone output first"
        )
    if features.shape[0] != labels.shape[0]:
        raise DataError(
            f"{features.shape[0]} feature rows but {labels.shape[0]} labels: pass one label per image"
        )
    if features.shape[0] < 3 or features.shape[1] < 2:
        raise DataError(
            f"need at least 3 images with at least 2 feature dims to project, got {features.shape}"
        )
    features = features.astype(np.float64, copy=False)
    if not np.all(np.isfinite(features)):
        raise DataError("features contain NaN or inf: the backbone output is broken, check the run")
    rng = np.random.default_rng(seed)
    if features.shape[0] > max_points:
        keep = np.sort(rng.choice(features.shape[0], size=max_points, replace=False))
        features, labels = features[keep], labels[keep]
    n = features.shape[0]
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed)
        points = pca.fit_transform(features)
        ratio = pca.explained_variance_ratio_
        axis_names = (f"PC 1 ({100 * ratio[0]:.1f}% var.)", f"PC 2 ({100 * ratio[1]:.1f}% var.)")
        method_name = "PCA"
    else:
        from sklearn.manifold import TSNE

        # Perplexity must stay below the number of points.
        perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
        points = tsne.fit_transform(features)
        axis_names = ("t-SNE 1", "t-SNE 2")
        method_name = f"t-SNE (perplexity {perplexity:g})"
    classes = np.unique(labels)
    if class_names is not None:
        if not np.issubdtype(classes.dtype, np.integer) or classes.min() < 0:
            raise DataError("class_names needs labels that are class indices (ints >= 0)")
        if classes.max() >= len(class_names):
            raise DataError(
                f"class_names has {len(class_names)} names but labels go up to {classes.max()}: "
                "pass one name per class index"
            )
    with _style():
        fig = _new_figure(7.5, 6.5)
        ax = fig.add_subplot()
        size = 12 if n <= 2000 else 5
        if classes.size <= 20:
            cmap = matplotlib.colormaps["tab10" if classes.size <= 10 else "tab20"]
            for i, c in enumerate(classes):
                mask = labels == c
                name = _class_name(c, class_names)
                ax.scatter(
                    points[mask, 0],
                    points[mask, 1],
                    s=size,
                    color=cmap(i),
                    label=name,
                    alpha=0.8,
                    linewidths=0,
                )
            ax.legend(
                loc="center left",
                bbox_to_anchor=(1.01, 0.5),
                title="class",
                markerscale=2.0,
                frameon=False,
            )
        else:  # too many classes for a legend: a colour bar over the class index
            codes = np.searchsorted(classes, labels)
            sc = ax.scatter(
                points[:, 0], points[:, 1], s=size, c=codes, cmap="turbo", alpha=0.8, linewidths=0
            )
            fig.colorbar(sc, ax=ax, label="class index")
        ax.set_xlabel(axis_names[0])
        ax.set_ylabel(axis_names[1])
        ax.set_title(f"Test embeddings, {method_name}, {n} points")
        return _save(fig, path)


def _class_name(label: Any, class_names: Sequence[str] | None) -> str:
    if class_names is not None and isinstance(label, int | np.integer):
        return f"{int(label)} {class_names[int(label)]}"
    return str(label)


def write_all_plots(
    results: dict[str, Any],
    run_dir: str | os.PathLike,
    features: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    projection: str = "pca",
) -> list[Path]:
    """Write per_class_accuracy.png, group_accuracy.png (and embedding_2d.png) into run_dir.

    ``projection`` ("pca" or "tsne") is the method of the embedding plot.
    """
    run_dir = Path(run_dir)
    written = [
        plot_per_class_accuracy(results, run_dir / "per_class_accuracy.png"),
        plot_group_bars(results, run_dir / "group_accuracy.png"),
    ]
    if features is not None:
        if labels is None:
            raise DataError("features were given without labels: pass the test labels too")
        written.append(
            plot_embedding_2d(features, labels, run_dir / "embedding_2d.png", method=projection)
        )
    return written
