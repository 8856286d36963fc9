"""Reports of finished runs: plots of one run and mean ± std tables over many.

The ``ltcl-report`` command (``ltcl.cli.report``) wraps :func:`find_results`,
:func:`aggregate` and :func:`to_markdown` for a multirun directory.
"""

from ltcl.evaluation.report.aggregate import (
    aggregate,
    find_results,
    load_results,
    protocol_metrics,
    to_csv,
    to_markdown,
)
from ltcl.evaluation.report.plots import (
    plot_embedding_2d,
    plot_group_bars,
    plot_per_class_accuracy,
    write_all_plots,
)

__all__ = [
    "aggregate",
    "find_results",
    "load_results",
    "plot_embedding_2d",
    "plot_group_bars",
    "plot_per_class_accuracy",
    "protocol_metrics",
    "to_csv",
    "to_markdown",
    "write_all_plots",
]
