"""``ltcl-report``: summarise the results.json of one or more (multi)run directories.

A plain argparse command rather than a Hydra app: it only reads finished runs, and
Hydra would create an output directory of its own for every report.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ltcl.errors import DataError, LtclError
from ltcl.evaluation.report.aggregate import (
    DEFAULT_GROUP_BY,
    DEFAULT_METRICS,
    aggregate,
    find_results,
    load_results,
    protocol_metrics,
    select_split,
    to_csv,
    to_markdown,
)
from ltcl.evaluation.report.compare import by_method, to_latex, write_comparison


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ltcl-report",
        description=(
            "Summarise ltcl-train/ltcl-eval runs as mean ± population std per method and "
            "dataset; prints Markdown and writes report.md and report.csv."
        ),
    )
    parser.add_argument(
        "dirs", nargs="+", metavar="DIR", help="run or multirun directories (searched recursively)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where report.md and report.csv go (default: the first DIR)",
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        default=list(DEFAULT_METRICS),
        help="protocols to report; dotted names reach few-shot, e.g. few_shot.100shot "
        "(default: knn linear)",
    )
    parser.add_argument(
        "--group-by",
        nargs="+",
        default=list(DEFAULT_GROUP_BY),
        help="results.json keys that define a row (default: method dataset); dotted keys "
        "reach into the config, e.g. config.method.sampler.strategy; add "
        "imbalance_ratio when a sweep mixes ratios",
    )
    parser.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="which numbers: test (metrics, for reporting; default) or val (val_metrics, the "
        "validation split that tuning reads); every column header names it",
    )
    parser.add_argument(
        "--format",
        nargs="+",
        choices=("markdown", "csv", "latex"),
        default=["markdown", "csv"],
        help="tables to write beside each other: report.md, report.csv, report.tex (booktabs; "
        "\\usepackage{booktabs}); default: markdown csv",
    )
    parser.add_argument(
        "--figures",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="comparison figures beside report.md: per-class accuracy against training count "
        "(a band over splits per method), class-group bars, the difference to --baseline "
        "(default: on)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        help="the method the difference figure subtracts (default: SimCLR when present, else "
        "the first method)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0, or 2 with a message on bad input)."""
    args = build_parser().parse_args(argv)
    try:
        runs = select_split(load_results(find_results(args.dirs)), args.split)
        missing = [m for m in args.metrics if not any(protocol_metrics(r, m) for r in runs)]
        if missing and len(missing) < len(args.metrics):
            print(f"ltcl-report: no run has {args.split} numbers for {missing}", file=sys.stderr)
        elif missing:
            raise DataError(
                f"no run has {args.split} numbers for {missing}: choose --metrics from the "
                "protocols the runs evaluated (knn, linear, linear_a, few_shot.1pct, ...)"
            )
        rows = aggregate(runs, metrics=args.metrics, group_by=args.group_by)
        markdown = to_markdown(rows, per_run=runs, split=args.split)
        out = args.out
        if out is None:
            first = Path(args.dirs[0])
            out = first.parent if first.is_file() else first
        try:
            out.mkdir(parents=True, exist_ok=True)
            written = []
            if "markdown" in args.format:
                (out / "report.md").write_text(markdown, encoding="utf-8")
                written.append(out / "report.md")
            if "csv" in args.format:
                (out / "report.csv").write_text(to_csv(rows), encoding="utf-8")
                written.append(out / "report.csv")
            if "latex" in args.format:
                grouped = by_method(runs, args.group_by)
                tex = to_latex(grouped, [m for m in args.metrics if m not in missing], args.split)
                (out / "report.tex").write_text(tex, encoding="utf-8")
                written.append(out / "report.tex")
            if args.figures:
                written += write_comparison(
                    runs, out, [m for m in args.metrics if m not in missing], args.group_by,
                    args.baseline,
                )  # fmt: skip
        except OSError as err:
            print(
                f"ltcl-report: error: cannot write the report into {out} ({err}): "
                "pass a writable directory with --out",
                file=sys.stderr,
            )
            return 2
    except LtclError as err:
        print(f"ltcl-report: error: {err}", file=sys.stderr)
        return 2
    print(markdown, end="")
    print(f"\n[ltcl-report] {len(runs)} runs -> " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
