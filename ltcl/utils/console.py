"""A quiet console: a run shows its progress bar, its own lines and its result table.

Lightning's tips, device banners and known harmless warnings are library chatter to a user of
ltcl; ``verbose=true`` brings them (and the model summary) back.
"""

from __future__ import annotations

import logging
import warnings

# Messages (regular expressions) that say nothing a user of ltcl must act on.
KNOWN_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\).*",  # torch/Lightning internal deprecation
    r".*smaller than the logging interval.*",  # tiny datasets: fewer steps than log_every_n_steps
    r".*is not supported by the model summary.*",
    r".*exists and is not empty.*",  # the checkpoint folder of a resumed run
    r".*does not have many workers.*",  # ltcl loads decoded uint8 arrays; workers do not help
    r".*Consider setting `persistent_workers=True`.*",
)


def quiet_console(verbose: bool) -> None:
    """Silence Lightning's info logs and the known warnings unless `verbose`."""
    if verbose:
        return
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
