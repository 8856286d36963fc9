"""Where the Hydra configs live: the repository's ``conf/`` directory.

The ground floor of the package (it imports nothing of ltcl), so that every layer, the console
commands, the error hints and the tests, reads the config directory from this one place.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
