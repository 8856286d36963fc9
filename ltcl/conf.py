"""Where the Hydra configs live (the repository's ``conf/`` directory), and the keys they retired.

The ground floor of the package (it imports nothing of ltcl), so that every layer, the console
commands, the error hints and the tests, reads the config directory from this one place.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")

# Keys (and everything under them) that conf/ no longer has, each with the one way that does
# the same now. Given anyway, on the command line or in an experiment file, they are refused
# before anything runs, with this fix (ltcl.cli.console, ltcl.run.config_checks).
RETIRED: dict[str, str] = {
    "stages.simclr": (
        "SimCLR at the method's budget is a peer like the others: stages.compare=[simclr] "
        "(same <run dir>/simclr/ and settings; its epochs are stages.compare_epochs, its "
        "settings stages.peers.simclr.*)"
    ),
}


def retired(key: str) -> str | None:
    """The error line for `key` when it is, or lies under, a retired key; else None."""
    for old, instead in RETIRED.items():
        if key == old or key.startswith(old + "."):
            return f"{key} is no longer a setting: {instead}"
    return None
