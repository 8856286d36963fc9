"""Every config key that an ltcl message quotes exists in a composed config.

A hint that names a key the user cannot set (``data.imbalance_ratio`` for
``data.split.imbalance_ratio``) sends them looking for nothing. The quoted keys are taken from
the string literals of ltcl's sources; the known keys from every option of every group.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from ltcl.conf import CONFIG_DIR
from tests.helpers import REPO_ROOT

GROUPS = ("data", "ood", "model", "method", "optim", "trainer", "logger", "sampler", "loss")
KEY = re.compile(
    r"(?<![\w./])((?:data|ood|model|method|optim|trainer|logger|eval|sampler|loss|stages|paths|"
    r"hydra\.launcher|hydra\.sweeper)\.[a-z_][a-z_0-9]*(?:\.[a-z_][a-z_0-9]*)*)"
)
NOT_KEYS = {"method.md"}  # file names that look like keys


def _strings(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(node.value)
    return out


def quoted_keys() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((REPO_ROOT / "ltcl").rglob("*.py")) + [
        REPO_ROOT / "hydra_plugins" / "ltcl_slurm_launcher" / "launcher.py"
    ]:
        for text in _strings(ast.parse(path.read_text())):
            if " " not in text.strip():  # a bare identifier, not a message
                continue
            for key in KEY.findall(text):
                if key not in NOT_KEYS:
                    found.setdefault(key, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def _flatten(node, prefix=""):
    keys = {prefix[:-1]} if prefix else set()
    if isinstance(node, dict):
        for k, v in node.items():
            keys |= _flatten(v, f"{prefix}{k}.")
    return keys


def known_keys() -> set[str]:
    keys: set[str] = set()
    configs = Path(CONFIG_DIR)
    runs = [["method=guide", "ood=tinyimagenet", "hydra/launcher=slurm"]]
    for group in GROUPS:
        for option in sorted((configs / group).glob("*.yaml")):
            pool = [] if group == "ood" else ["ood=embedded"]
            runs.append([f"{group}={option.stem}", *pool])
    for option in sorted((configs / "method" / "sampler").glob("*.yaml")):  # the nested group
        runs.append(["method=guide", f"method/sampler={option.stem}", "ood=embedded"])
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        for overrides in runs:
            for name in ("train", "pipeline"):
                cfg = compose(name, overrides=overrides, return_hydra_config=True)
                keys |= _flatten(OmegaConf.to_container(cfg, resolve=False))
        keys |= _flatten(OmegaConf.to_container(compose("eval"), resolve=False))
    return keys


@pytest.mark.slow
def test_every_key_in_a_message_exists():
    known = known_keys()
    missing = {k: sorted(v) for k, v in quoted_keys().items() if k not in known}
    assert not missing, f"messages quote keys that no config has: {missing}"
