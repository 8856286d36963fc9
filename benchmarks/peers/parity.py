"""Parity harness: ltcl's peer components against the OFFICIAL code of SDCLR, BCL and COLT.

Runs ltcl's implementation of each peer component and the official repositories' own code on
identical inputs (fp64, small batches of 32x32 images) and writes a table

    component | ltcl | official | verdict

with verdicts ``same [max abs diff]`` / ``differs (harmless: why)`` / ``fixed (what changed)`` /
``differs (could change results: why)``. A measured difference above its tolerance always
turns a row into ``differs (could change results: ...)``, whatever the row expected.

Nothing of the official code is copied: each repository is imported from its checkout, one
repository per subprocess (they all have top-level ``models``, ``utils``, ``data`` packages).
The official code calls ``.cuda()`` and ``torch.distributed``; on a CPU-only machine the
harness turns ``Tensor.cuda`` / ``Module.cuda`` into the identity, starts a 1-process gloo
group where the official code gathers, supplies ``torchvision.models.utils`` (removed from
torchvision; SDCLR imports ``load_state_dict_from_url`` from it) and, when OpenCV is not
installed, an empty ``cv2`` module (only the ImageNet list loaders use it, never called here).

Usage (about 5 minutes on 2 CPU cores)::

    git clone <mirror of VITA-Group/SDCLR> /work/official/SDCLR   # likewise BCL and COLT
    SDCLR_REPO=/work/official/SDCLR BCL_REPO=/work/official/BCL COLT_REPO=/work/official/COLT \\
        python benchmarks/peers/parity.py

writes ``benchmarks/peers/results/peer_parity/{parity.md,parity.json}`` (``--out`` to change) and
``docs/peer_parity.md`` (``--no-docs`` to leave it).
Optional: ``LTCL_SHARED_DATA`` (default ``<repo>/../shared/data``) for real CIFAR-10 images in
the RandAugment comparison (random smooth images otherwise); ``CIFAR10_LABELS``, a ``.npy`` of
the 50,000 CIFAR-10 training labels in the official order, for per-class counts of the
published split files (only their totals are checked without it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "benchmarks" / "peers" / "results" / "peer_parity"
COMMAND = (
    "SDCLR_REPO=/work/official/SDCLR BCL_REPO=/work/official/BCL COLT_REPO=/work/official/COLT "
    "python benchmarks/peers/parity.py"
)

# ---------------------------------------------------------------------------------------------
# Rows, verdicts and the table (pure: no official checkout needed; tests/unit/test_peer_parity.py)
# ---------------------------------------------------------------------------------------------

SAME, HARMLESS, FIXED, COULD_CHANGE = (
    "same",
    "differs (harmless)",
    "fixed",
    "differs (could change results)",
)
VERDICTS = (SAME, HARMLESS, FIXED, COULD_CHANGE)
GROUPS = ("SDCLR", "BCL", "COLT", "all peers")

# Differences that could change results and are kept on purpose: component -> the decision and
# the switch that restores the official setting. A could-change row without an entry here is an
# open difference; the docs page lists it as such.
_SAME_OPTIMISER_RULE = (
    "ltcl gives every method of a comparison (SimCLR and the method included) one optimiser "
    "rule, so that two runs differ only in their method; "
    "optim.schedule.exclude_bias_and_norm=false applies the official rule to every method of a "
    "run, and the SDCLR step rows show it then equals the official steps"
)
KEPT = {
    "one SDCLR step with ltcl's default optimiser groups": _SAME_OPTIMISER_RULE,
    "weight decay on biases and norms": _SAME_OPTIMISER_RULE,
    "numeric precision of training": (
        "every method of a comparison runs at the same precision, and bf16 is what makes the "
        "GPU tier affordable; trainer.precision=32-true reproduces the official arithmetic"
    ),
    "evaluation: few-shot (SDCLR/COLT's S_b, 1% of the LT set)": (
        "an evaluation, not a training setting: every method is probed with the same recipe, "
        "so ltcl's comparisons hold; its few-shot numbers are not to be set beside the "
        "published SDCLR/COLT few-shot tables (docs/recipes/evaluation.md says so)"
    ),
    "OOD pool": (
        "COLT's 300K file derives from the withdrawn 80 Million Tiny Images and is not on this "
        "machine; ood=random300k reads it where a user has it, every OOD-using method of a "
        "comparison reads the same pool"
    ),
}

# Where each official repository's checkout is read from, and a file that must be in it.
REPOS = {
    "SDCLR": ("SDCLR_REPO", "prune/mask.py", "https://github.com/VITA-Group/SDCLR"),
    "BCL": ("BCL_REPO", "data/randaug.py", "https://github.com/MediaBrain-SJTU/BCL"),
    "COLT": ("COLT_REPO", "train_simCLR.py", "https://github.com/JianhongBai/COLT"),
}


def row(
    group: str,
    component: str,
    ltcl: str,
    official: str,
    verdict: str,
    why: str = "",
    max_abs_diff: float | None = None,
    evidence: str = "",
) -> dict[str, Any]:
    """One table row; :func:`check_row` says what a valid one is."""
    return {
        "group": group,
        "component": component,
        "ltcl": ltcl,
        "official": official,
        "verdict": verdict,
        "why": why,
        "max_abs_diff": None if max_abs_diff is None else float(max_abs_diff),
        "evidence": evidence,
    }


def measured(
    group: str,
    component: str,
    ltcl: str,
    official: str,
    diff: float,
    tol: float,
    verdict: str = SAME,
    why: str = "",
    evidence: str = "",
) -> dict[str, Any]:
    """A row whose verdict rests on a measured max abs difference: within ``tol`` it is
    ``verdict`` (same, fixed or harmless with ``why``); beyond it, always "could change"."""
    diff = float(diff)
    if not (diff <= tol):  # NaN too
        why = f"measured max abs diff {diff:.3g} > tolerance {tol:.3g}" + (
            f"; expected: {why}" if why else ""
        )
        verdict = COULD_CHANGE
    return row(group, component, ltcl, official, verdict, why, diff, evidence)


def check_row(r: dict[str, Any]) -> None:
    """Raise ValueError unless ``r`` is a complete row with a known verdict; every verdict but
    ``same`` needs its why (what is harmless, what changed, what could change results)."""
    missing = [k for k in ("group", "component", "ltcl", "official", "verdict") if not r.get(k)]
    if missing:
        raise ValueError(f"row {r.get('component')!r} lacks {missing}")
    if r["group"] not in GROUPS:
        raise ValueError(f"row {r['component']!r}: unknown group {r['group']!r}, use {GROUPS}")
    if r["verdict"] not in VERDICTS:
        raise ValueError(
            f"row {r['component']!r}: unknown verdict {r['verdict']!r}, use {VERDICTS}"
        )
    if r["verdict"] != SAME and not str(r.get("why") or "").strip():
        raise ValueError(f"row {r['component']!r}: verdict {r['verdict']!r} needs a why")
    diff = r.get("max_abs_diff")
    if diff is not None and not isinstance(diff, int | float):
        raise ValueError(f"row {r['component']!r}: max_abs_diff must be a number or None")


def verdict_cell(r: dict[str, Any]) -> str:
    """``same [max abs diff 1e-16]``, ``differs (harmless: why)``, ``fixed (what changed)``,
    ``differs (could change results: why)``; evidence in brackets after it."""
    check_row(r)
    v, why = r["verdict"], str(r.get("why") or "").strip()
    if v == SAME:
        text = "same"
    elif v == FIXED:
        text = f"fixed ({why})"
    elif v == HARMLESS:
        text = f"differs (harmless: {why})"
    else:
        text = f"differs (could change results: {why})"
        kept = KEPT.get(r["component"])
        text += f"; kept: {kept}" if kept else "; open"
    notes = []
    if r.get("max_abs_diff") is not None:
        notes.append(f"max abs diff {r['max_abs_diff']:.2g}")
    if r.get("evidence"):
        notes.append(str(r["evidence"]))
    return text + (f" [{'; '.join(notes)}]" if notes else "")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def format_markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The table, grouped by peer, with the official commits and the command."""
    for r in rows:
        check_row(r)
    lines = [
        "# ltcl vs the official peer code",
        "",
        f"Command: `{meta.get('command', COMMAND)}`",
        "",
        "| repository | commit |",
        "| --- | --- |",
    ]
    for name, info in (meta.get("repos") or {}).items():
        lines.append(f"| {name} ({info.get('url', '')}) | `{info.get('commit', '?')}` |")
    env = meta.get("environment") or {}
    if env:
        lines += ["", "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items())]
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    lines += ["", "Verdicts: " + ", ".join(f"{v}: {n}" for v, n in counts.items())]
    for group in GROUPS:
        chosen = [r for r in rows if r["group"] == group]
        if not chosen:
            continue
        lines += ["", f"## {group}", "", "| component | ltcl | official | verdict |"]
        lines.append("| --- | --- | --- | --- |")
        for r in chosen:
            cells = (r["component"], r["ltcl"], r["official"], verdict_cell(r))
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


DOCS_INTRO = """\
# Parity with the official peer code

`benchmarks/peers/parity.py` runs ltcl's implementation of each peer component (SDCLR, BCL-I/D,
COLT, and SimCLR as their common base) and the **official code** of the peers on identical
inputs, in float64 on small batches of 32x32 images, and records the table below
(`benchmarks/peers/results/peer_parity/parity.md` and `.json`).

How it runs the official code: each repository is imported from its own checkout in a
subprocess of its own (all three have top-level `models`, `utils`, `data` packages); nothing of
it is copied into ltcl. On a CPU-only machine the harness makes `Tensor.cuda` / `Module.cuda`
the identity, starts a 1-process gloo group where the official code all-gathers (SDCLR's
`train_prune` runs on a real `DistributedDataParallel` model), gives SDCLR the
`torchvision.models.utils` module and the two-argument `Conv2d._conv_forward` of the torch it
was written for (torch < 1.8), and an empty `cv2` when OpenCV is missing (only the ImageNet
list loaders import it). Official functions that are defined inside a `main()` (data loaders,
model construction) are rebuilt from the same calls, named in each row. Where the official
training loops are driven (SDCLR's `train_prune`, BCL's `train` / `train_prune`, COLT's
`train`), they get fixed views instead of their augmenting datasets, and a constant LR: those
rows test the training step; the schedules have rows of their own.

Reading the verdicts: *same* (measured max abs diff within a float64 tolerance), *fixed* (the
lead changed ltcl to match, commit 885da71, and the harness measures it equal), *differs
(harmless: why)*, *differs (could change results: why)*. A measured difference above its
tolerance always becomes *could change results*. Tolerances are 1e-9 to 1e-12 for float64
arithmetic, and 1e-6 where one side rounds to float32 on purpose (ltcl's tail-score softmax and
BCL loss EMA, COLT's float32 positive mask); training runs in float32 on both sides.

## Running it

```bash
git clone https://github.com/VITA-Group/SDCLR /work/official/SDCLR
git clone https://github.com/MediaBrain-SJTU/BCL /work/official/BCL
git clone https://github.com/JianhongBai/COLT /work/official/COLT
{command}
```

This record took {cpu} CPU-seconds in all ({seconds} s of wall time per part, on 2 cores
shared with a training run). The variables are required; the harness refuses to run without
them. `--render` rewrites the Markdown from `parity.json` without running anything.
Optional: `LTCL_SHARED_DATA` (real CIFAR-10 images for the RandAugment rows; smooth random
images otherwise), `CIFAR10_LABELS` (a `.npy` of the 50,000 CIFAR-10 training labels in the
official order, to count the published split files per class; only their totals are checked
without it, since the shared JPEG copy is in class-folder order).

## Differences that could change results

{open}
"""


def docs_page(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """docs/peer_parity.md: how the harness works, the open differences and the table."""
    open_rows = [r for r in rows if r["verdict"] == COULD_CHANGE]
    listing = "\n".join(
        f"- **{r['component']}** ({r['group']}): {r['why']}. "
        + (f"*Kept:* {KEPT[r['component']]}." if r["component"] in KEPT else "*Open.*")
        for r in open_rows
    )
    seconds = ", ".join(f"{k} {v}" for k, v in (meta.get("seconds") or {}).items()) or "?"
    intro = DOCS_INTRO.format(
        command=meta.get("command", COMMAND),
        seconds=seconds,
        cpu=meta.get("cpu_seconds", "?"),
        open=listing or "None.",
    )
    table = format_markdown(rows, meta).replace(
        "# ltcl vs the official peer code", "## The table", 1
    )
    return intro + "\n" + table


def write_results(rows: list[dict[str, Any]], meta: dict[str, Any], out: Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = format_markdown(rows, meta)
    (out / "parity.md").write_text(markdown)
    (out / "parity.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return out / "parity.md"


def resolve_repos(env: dict[str, str] | None = None) -> dict[str, Path]:
    """The three checkouts from SDCLR_REPO, BCL_REPO, COLT_REPO; SystemExit with what to do
    when one is unset or is not a checkout of that repository."""
    env = os.environ if env is None else env
    paths, problems = {}, []
    for name, (var, marker, url) in REPOS.items():
        value = env.get(var)
        if not value:
            problems.append(f"{var} is not set (a checkout of {url})")
            continue
        path = Path(value)
        if not (path / marker).is_file():
            problems.append(f"{var}={value} is not a checkout of {url}: {marker} is missing")
            continue
        paths[name] = path
    if problems:
        raise SystemExit(
            "peer_parity needs the official repositories checked out:\n  - "
            + "\n  - ".join(problems)
            + "\nclone them outside the project and set the variables, e.g.\n  "
            + COMMAND
        )
    return paths


def repo_commit(path: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


# ---------------------------------------------------------------------------------------------
# Running official code on a CPU-only machine (used inside the per-repository subprocesses)
# ---------------------------------------------------------------------------------------------


def import_official(repo: Path) -> None:
    """Put one official repository first on sys.path, with the CPU shims it needs."""
    import types

    import torch

    for name in ("models", "utils", "data", "prune", "optimizer", "losses", "train_simCLR"):
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
    sys.path.insert(0, str(repo))
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.cuda.set_device = lambda *a, **k: None  # type: ignore[assignment]
    # torch < 1.8 let Conv2d._conv_forward(input, weight) read self.bias; SDCLR's prune_conv2d
    # still calls it that way (BCL's copy passes self.bias). Same arithmetic, newer signature.
    conv_forward = torch.nn.Conv2d._conv_forward
    if not getattr(conv_forward, "_parity_shim", False):

        def _conv_forward(self, input, weight, bias=None):
            return conv_forward(self, input, weight, self.bias if bias is None else bias)

        _conv_forward._parity_shim = True
        torch.nn.Conv2d._conv_forward = _conv_forward  # type: ignore[method-assign]
    if "torchvision.models.utils" not in sys.modules:
        shim = types.ModuleType("torchvision.models.utils")
        shim.load_state_dict_from_url = torch.hub.load_state_dict_from_url
        sys.modules["torchvision.models.utils"] = shim
    try:
        import cv2  # noqa: F401
    except ImportError:
        sys.modules["cv2"] = types.ModuleType("cv2")


def init_gloo() -> None:
    """A 1-process gloo group, for official code that all_gathers."""
    import socket

    import torch.distributed as dist

    if dist.is_initialized():
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)


class Log:
    """The official ``logger`` interface (``info``), kept in memory."""

    def __init__(self):
        self.lines: list[str] = []

    def info(self, msg):
        self.lines.append(str(msg))


def max_diff(a, b) -> float:
    import torch

    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape:
        return float("inf")
    if a.numel() == 0:
        return 0.0
    return float((a.double() - b.double()).abs().max())


def shell_default(text: str, name: str) -> str | None:
    """``name=${name:-value}`` of an official shell script."""
    import re

    m = re.search(rf"^{name}=\$\{{{name}:-([^}}]*)\}}", text, flags=re.M)
    return m.group(1).strip("'\"") if m else None


def compose_ltcl(overrides: list[str]):
    """ltcl's resolved Hydra config for some overrides (no run, nothing written)."""
    import tempfile

    from omegaconf import OmegaConf

    from tests.helpers import compose_train

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_train(Path(tmp), overrides)
        return OmegaConf.to_container(cfg, resolve=True)


def random_images(n: int, seed: int, size: int = 32):
    """Smooth random images in [0, 1] (fp64), (n, 3, size, size)."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g, dtype=torch.float64)
    return F.interpolate(low, size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def copy_bn(dst, src) -> None:
    import torch

    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            getattr(dst, name).copy_(getattr(src, name))


def randomise_bn(modules, seed: int) -> None:
    """Non-trivial BN parameters and statistics, so that using the wrong set shows."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in modules:
            n = bn.weight.numel()
            bn.weight.copy_(1 + 0.2 * torch.randn(n, generator=g, dtype=torch.float64))
            bn.bias.copy_(0.1 * torch.randn(n, generator=g, dtype=torch.float64))
            bn.running_mean.copy_(0.1 * torch.randn(n, generator=g, dtype=torch.float64))
            bn.running_var.copy_(1 + 0.5 * torch.rand(n, generator=g, dtype=torch.float64))


def copy_by_order(dst_tensors: list, src_tensors: list, what: str) -> int:
    """Copy a list of tensors onto another of the same shapes, pairwise."""
    import torch

    if len(dst_tensors) != len(src_tensors):
        raise RuntimeError(f"{what}: {len(dst_tensors)} ltcl tensors, {len(src_tensors)} official")
    with torch.no_grad():
        for i, (d, s) in enumerate(zip(dst_tensors, src_tensors, strict=True)):
            if d.shape != s.shape:
                raise RuntimeError(f"{what}[{i}]: shape {tuple(d.shape)} vs {tuple(s.shape)}")
            d.copy_(s)
    return len(dst_tensors)


def ltcl_sgd(modules, lr: float, weight_decay: float, exclude_bias_and_norm: bool):
    """ltcl's optimiser for a method (base.configure_optimizers' groups), fixed LR."""
    import torch

    from ltcl.optim import parameter_groups

    groups = parameter_groups(modules, weight_decay, exclude_bias_and_norm)
    return torch.optim.SGD(groups, lr=lr, momentum=0.9)


def id_batch(index, v1, v2) -> dict[str, Any]:
    import torch

    index = torch.as_tensor(index)
    return {"id": {"index": index, "label": torch.zeros_like(index), "views": [v1, v2]}}


class OneEpochLoader(list):
    """A list of batches that the official ``train`` loops can iterate and take len() of."""


# ---------------------------------------------------------------------------------------------
# SDCLR (VITA-Group/SDCLR): mask, pruned branch, projector, loss, steps, schedule, presets, splits
# ---------------------------------------------------------------------------------------------

SDCLR_SRC = "SDCLR"


def sdclr_official_model(seed: int):
    """SDCLR's ``--prune --prune_dual_bn`` model as train_simCLR.py builds it for CIFAR:
    prune_resnet18_dual(imagenet=False) with ``model.fc = proj_head(512, 128)``."""
    import torch
    from models.resnet_prune_multibn import batch_norm_multiple, proj_head, prune_resnet18_dual

    torch.manual_seed(seed)
    model = prune_resnet18_dual(pretrained=False, imagenet=False, num_classes=10)
    model.fc = proj_head(model.fc.in_features, 128)
    model = model.double()
    bns = [m for m in model.modules() if isinstance(m, batch_norm_multiple)]
    randomise_bn([b for m in bns for b in m.bn_list], seed + 1)
    return model


def sdclr_ltcl_module(prune_percent: float = 0.9, layers: int = 3, norms: str = "own", cls=None):
    from ltcl.methods.sdclr import SDCLRModule

    cls = cls or SDCLRModule
    return cls(
        backbone={"name": "cifar_resnet18"},
        projector={"hidden_dim": None, "out_dim": 128},
        projector_layers=layers,
        pruned_projector_norms=norms,
        prune_percent=prune_percent,
        temperature=0.2,
        channels_last=False,
    ).double()


def sdclr_copy_weights(official, module) -> dict[str, int]:
    """Official dual-BN model -> ltcl SDCLRModule: convolutions, dense BNs (bn_list[0],
    'nonprune'), pruned BNs (bn_list[1], 'prune') and the projector, by order and shape."""
    from models.resnet_prune_multibn import batch_norm_multiple, prune_conv2d
    from torch import nn

    from ltcl.models.pruning import _norm_key

    conv_o = [m.weight for n, m in official.named_modules() if isinstance(m, prune_conv2d)]
    conv_l = [m.weight for m in module.backbone.modules() if isinstance(m, nn.Conv2d)]
    n_conv = copy_by_order(conv_l, conv_o, "conv weights")
    bn_o = [m for n, m in official.named_modules() if isinstance(m, batch_norm_multiple)]
    bb_o = [m for m in bn_o if m not in list(official.fc.modules())]
    proj_o = [m for m in official.fc.modules() if isinstance(m, batch_norm_multiple)]
    dense_l = [m for m in module.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    if len(dense_l) != len(bb_o):
        raise RuntimeError(f"{len(dense_l)} ltcl backbone BNs vs {len(bb_o)} official")
    for d, o in zip(dense_l, bb_o, strict=True):
        copy_bn(d, o.bn_list[0])
    pruned = module.pruned
    for name, o in zip(pruned.norm_names, bb_o, strict=True):
        copy_bn(pruned.norms[_norm_key(name)], o.bn_list[1])
    lin_o = [official.fc.fc1, official.fc.fc2] + (
        [official.fc.fc3] if hasattr(official.fc, "fc3") else []
    )
    lin_l = [m for m in module.projector if isinstance(m, nn.Linear)]
    params_o = [p for m in lin_o for p in m.parameters()]
    params_l = [p for m in lin_l for p in m.parameters()]
    copy_by_order(params_l, params_o, "projector linears")
    pbn_l = [m for m in module.projector if isinstance(m, nn.BatchNorm1d)]
    for d, o in zip(pbn_l, proj_o, strict=True):
        copy_bn(d, o.bn_list[0])
    own = module.pruned_projector
    if own is not None:
        for name, o in zip(own.norm_names, proj_o, strict=True):
            copy_bn(own.norms[_norm_key(name)], o.bn_list[1])
    return {"convs": n_conv, "backbone_bns": len(bb_o), "projector_bns": len(proj_o)}


def part_sdclr(repo: Path) -> list[dict[str, Any]]:
    import prune.prune_simCLR as prune_simclr
    import torch
    import torch.nn.functional as F
    from models.resnet_prune import prune_conv2d
    from prune.mask import Mask
    from torch import nn
    from utils import nt_xent as sdclr_nt_xent

    from ltcl.losses.nt_xent import nt_xent
    from ltcl.models.projector import Projector
    from ltcl.models.pruning import global_magnitude_masks, prunable_weights

    G = SDCLR_SRC
    rows: list[dict[str, Any]] = []
    init_gloo()

    # ---- the mask, on a real backbone's convolution weights -------------------------------
    official = sdclr_official_model(0)
    module = sdclr_ltcl_module()
    counts = sdclr_copy_weights(official, module)
    worst, evidence = 0, []
    # float32 weights, as in training (ltcl computes the threshold in float32).
    off32 = official.float()
    bb32 = module.backbone.float()
    for p in (0.0, 0.3, 0.9, 0.999):
        for mo, wl in zip(
            [m for m in off32.modules() if isinstance(m, prune_conv2d)],
            prunable_weights(bb32).values(),
            strict=True,
        ):
            with torch.no_grad():
                mo.weight.copy_(wl)
        Mask(off32).magnitudePruning(p)
        masks_o = [m.prune_mask.bool() for m in off32.modules() if isinstance(m, prune_conv2d)]
        masks_l = list(global_magnitude_masks(prunable_weights(bb32), p).values())
        wrong = sum(int((a != b).sum()) for a, b in zip(masks_o, masks_l, strict=True))
        kept = sum(int(m.sum()) for m in masks_l)
        worst = max(worst, wrong)
        evidence.append(f"p={p}: {wrong} of {sum(m.numel() for m in masks_l)} differ, {kept} kept")
    module.double()
    rows.append(
        measured(
            G,
            "pruning mask, ResNet-18 convolution weights (all 20 convs, global)",
            "ltcl.models.pruning.global_magnitude_masks",
            "prune/mask.py Mask.magnitudePruning",
            worst,
            0,
            FIXED,
            "885da71: ceil(p*N) pruned, threshold = sorted|w|[min(n, N-1)], keep |w| >= threshold",
            "; ".join(evidence),
        )
    )
    # ---- the mask on ties ------------------------------------------------------------------
    g = torch.Generator().manual_seed(3)
    tie = nn.Sequential(prune_conv2d(4, 6, 3, bias=False), prune_conv2d(6, 5, 1, bias=False))
    with torch.no_grad():
        for m in tie:
            levels = torch.tensor([0.0, 0.1, -0.1, 0.2, -0.2, 0.3])
            m.weight.copy_(levels[torch.randint(6, m.weight.shape, generator=g)])
    worst, evidence = 0, []
    for p in (0.1, 0.25, 0.5, 0.7, 0.95):
        Mask(tie).magnitudePruning(p)
        masks_o = [m.prune_mask.bool() for m in tie]
        masks_l = list(
            global_magnitude_masks({str(i): m.weight for i, m in enumerate(tie)}, p).values()
        )
        wrong = sum(int((a != b).sum()) for a, b in zip(masks_o, masks_l, strict=True))
        worst = max(worst, wrong)
        evidence.append(
            f"p={p}: kept {sum(int(m.sum()) for m in masks_o)}/{sum(m.numel() for m in masks_o)}, {wrong} differ"
        )
    rows.append(
        measured(
            G,
            "pruning mask, ties at the threshold (6 magnitude levels)",
            "global_magnitude_masks",
            "Mask.magnitudePruning",
            worst,
            0,
            FIXED,
            "885da71: ties at the threshold are kept (>=), as the official mask",
            "; ".join(evidence),
        )
    )

    # ---- projector alone -------------------------------------------------------------------
    from models.resnet_prune_multibn import proj_head

    torch.manual_seed(5)
    head = proj_head(512, 128).double()
    randomise_bn([b for m in head.modules() if hasattr(m, "bn_list") for b in m.bn_list], 6)
    proj = Projector(512, None, 128, num_layers=3).double()
    lin = [head.fc1, head.fc2, head.fc3]
    copy_by_order(
        [p for m in proj if isinstance(m, nn.Linear) for p in m.parameters()],
        [p for m in lin for p in m.parameters()],
        "projector",
    )
    for d, o in zip(
        [m for m in proj if isinstance(m, nn.BatchNorm1d)],
        [head.bn1, head.bn2, head.bn3],
        strict=True,
    ):
        copy_bn(d, o.bn_list[0])
    feats = torch.randn(16, 512, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    diffs = []
    for train in (True, False):
        head.train(train), proj.train(train)
        diffs.append(max_diff(proj(feats), head(feats, "nonprune")))
    shapes = [tuple(p.shape) for p in proj.parameters()]
    rows.append(
        measured(
            G,
            "projector (3 layers, --prune_dual_bn preset)",
            "ltcl.models.projector.Projector(512, None, 128, num_layers=3)",
            "models/resnet_prune_multibn.py proj_head(512, 128)",
            max(diffs),
            1e-12,
            FIXED,
            "885da71: 3 linear layers 512-512-512-128 (bias only on the first), BN after each",
            f"train and eval mode outputs; {len(shapes)} parameter tensors of equal shapes",
        )
    )

    # ---- forward: dense and pruned branch, BN statistics ----------------------------------
    official = sdclr_official_model(0)
    module = sdclr_ltcl_module()
    sdclr_copy_weights(official, module)
    Mask(official).magnitudePruning(0.9)
    module.pruned.update_masks(module.backbone)
    x = random_images(8, 11)
    with torch.no_grad():
        xn = official.normalize(x)  # the official model normalises inside (ImageNet mean/std)
    official.train(), module.train()
    official.set_prune_flag(False)
    f_dense = official(x)
    z_dense = module.embed(xn)
    official.set_prune_flag(True)
    f_pruned = official(x)
    z_pruned = module.pruned_projection(module.pruned(module.backbone, xn))
    d_dense = max_diff(z_dense, F.normalize(f_dense, dim=1))
    d_pruned = max_diff(z_pruned, f_pruned)
    rows.append(
        measured(
            G,
            "dense branch forward (train mode, fp64)",
            "SDCLRModule.embed",
            "prune_resnet18_dual + proj_head, set_prune_flag(False) ('nonprune' BNs)",
            d_dense,
            1e-10,
            evidence=f"batch 8 of 32x32; weights mapped: {counts}",
        )
    )
    rows.append(
        measured(
            G,
            "pruned branch forward, own BNs in backbone and projector (train mode, fp64)",
            "SDCLRModule.pruned_projection(pruned(backbone, x)) after pruned.update_masks",
            "set_prune_flag(True): weight * prune_mask, 'prune' BNs in backbone and proj_head",
            d_pruned,
            1e-10,
            FIXED,
            "885da71: the pruned branch runs the projector with BatchNorms of its own",
            "prune 0.9",
        )
    )
    bn_o = [m for m in official.modules() if hasattr(m, "bn_list")]
    bb_o = [m for m in bn_o if m not in list(official.fc.modules())]
    proj_o = [m for m in official.fc.modules() if hasattr(m, "bn_list")]
    from ltcl.models.pruning import _norm_key

    dense_l = [m for m in module.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    dense_l += [m for m in module.projector if isinstance(m, nn.BatchNorm1d)]
    pruned_l = [module.pruned.norms[_norm_key(n)] for n in module.pruned.norm_names]
    pruned_l += [
        module.pruned_projector.norms[_norm_key(n)] for n in module.pruned_projector.norm_names
    ]
    off_dense = [m.bn_list[0] for m in bb_o + proj_o]
    off_pruned = [m.bn_list[1] for m in bb_o + proj_o]

    def stats_diff(mods_l, mods_o):
        return max(
            max(max_diff(a.running_mean, b.running_mean), max_diff(a.running_var, b.running_var))
            for a, b in zip(mods_l, mods_o, strict=True)
        )

    rows.append(
        measured(
            G,
            "BN running statistics after one train-mode forward of each branch",
            "backbone/projector BNs (dense), pruned.norms + pruned_projector.norms (pruned)",
            "bn_list[0] 'nonprune' / bn_list[1] 'prune' of every batch_norm_multiple",
            max(stats_diff(dense_l, off_dense), stats_diff(pruned_l, off_pruned)),
            1e-12,
            evidence=f"{len(dense_l)} dense and {len(pruned_l)} pruned BN layers",
        )
    )

    # ---- NT-Xent: both argument conventions, values and gradients --------------------------
    g = torch.Generator().manual_seed(21)
    z1 = torch.randn(12, 128, dtype=torch.float64, generator=g, requires_grad=True)
    z2 = torch.randn(12, 128, dtype=torch.float64, generator=g, requires_grad=True)
    ours = nt_xent(z1, z2, 0.2)
    theirs_pair = sdclr_nt_xent(z1, t=0.2, features2=z2)
    interleaved = torch.stack([z1, z2], dim=1).reshape(24, 128)  # (B, 2, D) -> views adjacent
    theirs_inter = sdclr_nt_xent(interleaved, t=0.2)
    g_ours = torch.autograd.grad(ours, [z1, z2])
    g_theirs = torch.autograd.grad(theirs_pair, [z1, z2])
    d = max(
        max_diff(ours, theirs_pair),
        max_diff(ours, theirs_inter),
        *(max_diff(a, b) for a, b in zip(g_ours, g_theirs, strict=True)),
    )
    rows.append(
        measured(
            G,
            "NT-Xent loss and its gradient",
            "ltcl.losses.nt_xent.nt_xent(z1, z2, temperature): views as two (B, D) tensors",
            "utils.py nt_xent(x, t, features2): (x=z1, features2=z2), or x = 2B rows with the "
            "two views of an image adjacent (train_simCLR's inputs.view(2B, ...))",
            d,
            1e-12,
            evidence="B 12, D 128, t 0.2; value equal in both official conventions, grads w.r.t. z1, z2",
        )
    )

    # ---- training steps: official train_prune vs ltcl training_loss + SGD ------------------
    rows += sdclr_steps(repo, prune_simclr)

    # ---- optimiser parameter groups --------------------------------------------------------
    module = sdclr_ltcl_module()
    from ltcl.optim import parameter_groups

    groups = parameter_groups(
        [module.backbone, module.projector, *module.extra_trainable_modules()], 1e-4, True
    )
    n_decay = sum(p.numel() for p in groups[0]["params"])
    n_free = sum(p.numel() for p in groups[1]["params"])
    t_free = len(groups[1]["params"])
    rows.append(
        row(
            "all peers",
            "weight decay on biases and norms",
            "optim.schedule.exclude_bias_and_norm: true (every method, SimCLR too): "
            f"{t_free} bias/BN tensors ({n_free:,} values) without decay, {n_decay:,} decayed "
            "(SDCLR module)",
            "SGD(model.parameters(), weight_decay=wd): every parameter decayed (SDCLR/COLT "
            "train_simCLR.py, BCL train.py / train_sdclr.py)",
            COULD_CHANGE,
            "BN scales/shifts and biases are never decayed in ltcl, always in the official "
            "code (wd 1e-4, 5e-4 for BCL-I, over 2000 epochs); the step-parity rows above "
            "match only with exclude_bias_and_norm=false, which reproduces the official rule",
            evidence="see the SDCLR step rows: exclude_bias_and_norm=false matches the official "
            "steps, the default does not",
        )
    )

    # ---- LR schedule ----------------------------------------------------------------------
    rows += sdclr_schedule(repo)
    # ---- presets, evaluation, splits --------------------------------------------------------
    rows += sdclr_presets(repo)
    rows += sdclr_splits(repo)
    return rows


def sdclr_steps(repo: Path, prune_simclr) -> list[dict[str, Any]]:
    """A few SDCLR training steps (fp64, same initial weights and batches): the official
    ``prune/prune_simCLR.py train_prune`` (DDP-wrapped model, 1-process gloo group) against
    ltcl's ``SDCLRModule.training_loss`` + SGD, loss trajectory and final weights."""
    import argparse as ap

    import torch
    from torch import nn

    G = SDCLR_SRC
    steps, batch, lr, wd = 3, 4, 0.05, 1e-4
    images = [random_images(2 * batch, 100 + s) for s in range(steps)]
    # The official loader yields (B, 2, C, H, W): view 1 dense, view 2 pruned.
    official = sdclr_official_model(0)
    batches_o = OneEpochLoader(torch.stack([im[:batch], im[batch:]], dim=1) for im in images)
    norm = official.normalize
    with torch.no_grad():
        batches_l = [
            id_batch(torch.arange(batch) + s * batch, norm(im[:batch]), norm(im[batch:]))
            for s, im in enumerate(images)
        ]

    results = {}
    for exclude in (False, True):
        official = sdclr_official_model(0)
        module = sdclr_ltcl_module()
        sdclr_copy_weights(official, module)
        # ---- ltcl
        opt = ltcl_sgd(
            [module.backbone, module.projector, *module.extra_trainable_modules()], lr, wd, exclude
        )
        module.train()
        module.pruned.update_masks(module.backbone)  # on_train_epoch_start
        losses_l, after_one = [], None
        # ltcl's default groups (exclude=True): one step, against the official rule's first step.
        for b in batches_l[: 1 if exclude else None]:
            opt.zero_grad()
            loss, _ = module.training_loss(b)
            loss.backward()
            opt.step()
            losses_l.append(float(loss))
            if after_one is None:
                after_one = {k: v.clone() for k, v in module.state_dict().items()}
        results[exclude] = (module, losses_l, after_one)
    # ---- official: train_prune, loss recorded from its first nt_xent call of each step
    official = sdclr_official_model(0)
    ddp = nn.parallel.DistributedDataParallel(official, find_unused_parameters=True)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=lr, weight_decay=wd, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    recorded: list[float] = []
    original = prune_simclr.nt_xent

    def recording(*a, **k):
        out = original(*a, **k)
        recorded.append(float(out))
        return out

    prune_simclr.nt_xent = recording
    args = ap.Namespace(
        prune_percent=0.9, random_prune_percent=0.0, temperature=0.2, print_freq=10**6
    )
    try:
        prune_simclr.train_prune(batches_o, ddp, optimizer, scheduler, 1, Log(), 0, 0, 1, args=args)
    finally:
        prune_simclr.nt_xent = original
    losses_o = recorded[0::2]  # per step: dense loss (reported), then the pruned-branch pass
    rows = []
    module, losses_l, _ = results[False]
    check = sdclr_ltcl_module()
    sdclr_copy_weights(official, check)  # the official final weights in ltcl's layout
    final = {
        k: v
        for k, v in check.state_dict().items()
        if "running" not in k and "num_batches" not in k and "mask" not in k
    }
    ours = module.state_dict()
    d_w = max(max_diff(ours[k], v) for k, v in final.items())
    d_loss = max(abs(a - b) for a, b in zip(losses_l, losses_o, strict=True))
    rows.append(
        measured(
            G,
            f"training steps ({steps} SGD steps, batch {batch}, fp64): losses and weights",
            "SDCLRModule.training_loss + SGD (m 0.9, wd 1e-4 on every parameter: "
            "exclude_bias_and_norm=false)",
            "prune/prune_simCLR.py train_prune: pruned view without grad, dense backward, "
            "pruned backward, one SGD step",
            max(d_loss, d_w),
            1e-9,
            evidence="losses ltcl "
            + ", ".join(f"{v:.6f}" for v in losses_l)
            + " / official "
            + ", ".join(f"{v:.6f}" for v in losses_o)
            + f"; loss diff {d_loss:.2g}, weight diff {d_w:.2g}",
        )
    )
    # Running statistics: official runs the pruned branch twice per step (no_grad + grad pass).
    from ltcl.models.pruning import _norm_key

    bn_o = [m for m in official.modules() if hasattr(m, "bn_list")]
    bb_o = [m for m in bn_o if m not in list(official.fc.modules())]
    proj_o = [m for m in official.fc.modules() if hasattr(m, "bn_list")]
    dense_l = [m for m in module.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    dense_l += [m for m in module.projector if isinstance(m, nn.BatchNorm1d)]
    pruned_l = [module.pruned.norms[_norm_key(n)] for n in module.pruned.norm_names]
    pruned_l += [
        module.pruned_projector.norms[_norm_key(n)] for n in module.pruned_projector.norm_names
    ]
    d_dense = max(
        max_diff(a.running_mean, b.bn_list[0].running_mean)
        for a, b in zip(dense_l, bb_o + proj_o, strict=True)
    )
    d_pruned = max(
        max_diff(a.running_var, b.bn_list[1].running_var)
        for a, b in zip(pruned_l, bb_o + proj_o, strict=True)
    )
    tracked_o = int(bb_o[0].bn_list[1].num_batches_tracked)
    tracked_l = int(pruned_l[0].num_batches_tracked)
    rows.append(
        measured(
            G,
            "BN running statistics after the steps: dense branch",
            "backbone/projector BNs",
            "bn_list[0] ('nonprune')",
            d_dense,
            1e-9,
        )
    )
    rows.append(
        row(
            G,
            "BN running statistics after the steps: pruned branch",
            f"updated once per step ({tracked_l} batches tracked)",
            f"updated twice per step ({tracked_o} batches tracked): train_prune runs the "
            "pruned view once under no_grad and again for its gradient",
            HARMLESS if tracked_o == 2 * tracked_l else COULD_CHANGE,
            "the pruned branch always runs in train mode (batch statistics) and evaluation "
            "uses the dense backbone, so its running statistics are never read; outputs and "
            "gradients are equal (row above)"
            if tracked_o == 2 * tracked_l
            else "the pruned BN statistics differ for another reason than the double update",
            d_pruned,
            "running_var max abs diff",
        )
    )
    module_x, _, one_x = results[True]
    one_o = results[False][2]
    names = dict(module_x.named_parameters())
    no_decay = {
        n for n, p in names.items() if p.ndim <= 1 or n.endswith(".bias")
    }  # parameter_groups' rule: biases and every norm parameter (all 1-D here)
    d_free = max(max_diff(one_x[n], one_o[n]) for n in no_decay)
    d_rest = max(max_diff(one_x[n], one_o[n]) for n in names if n not in no_decay)
    rows.append(
        row(
            "all peers",
            "one SDCLR step with ltcl's default optimiser groups",
            "exclude_bias_and_norm=true (default): no decay on biases and BN parameters",
            "weight decay on every parameter (= ltcl with exclude_bias_and_norm=false, equal "
            "to the official steps above)",
            COULD_CHANGE,
            f"after one step (lr {lr}, wd {wd}) the {len(no_decay)} bias/BN tensors differ by "
            f"up to {d_free:.2g} (lr x wd x |w|), the other weights by {d_rest:.2g}; over "
            "2000 epochs of decay the BN scales and biases end elsewhere",
            d_free,
        )
    )
    return rows


def sdclr_schedule(repo: Path) -> list[dict[str, Any]]:
    """SDCLR's cosine_annealing LambdaLR (scheduler.step() before each optimiser step) vs
    ltcl's configure_optimizers (Lightning steps the scheduler after the optimiser)."""
    import types

    import numpy as np
    import torch
    import train_simCLR as official_train

    G = SDCLR_SRC
    epochs, n_id, bs = 2000, 11165, 512
    official_len = math.ceil(n_id / bs)  # DistributedSampler, no drop_last
    ltcl_len = n_id // bs  # drop_last
    total_o, warm_o = epochs * official_len, 10 * official_len
    module = sdclr_ltcl_module()
    module.optimizer_factory = lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9)
    module.schedule.update(base_lr=0.5, reference_batch_size=512, scaling="linear")
    module.hparams.global_batch_size = bs
    module._trainer = types.SimpleNamespace(
        estimated_stepping_batches=epochs * ltcl_len,
        max_epochs=epochs,
        world_size=1,
        datamodule=None,
    )
    conf = module.configure_optimizers()
    lam = conf["lr_scheduler"]["scheduler"].lr_lambdas[0]
    # ltcl: iteration i runs at lam(i). Official: iteration i runs at f(i + 1) (step first).
    lr_o = np.array(
        [
            official_train.cosine_annealing(i + 1, total_o, 1, 1e-6 / 0.5, warm_o)
            for i in range(total_o)
        ]
    )
    lr_l = np.array([lam(i) for i in range(epochs * ltcl_len)])
    # Same formula, same length: the official function at ltcl's own step count.
    total_l, warm_l = epochs * ltcl_len, 10 * ltcl_len
    lr_o_same = np.array(
        [
            official_train.cosine_annealing(i + 1, total_l, 1, 1e-6 / 0.5, warm_l)
            for i in range(total_l)
        ]
    )
    d_formula = float(np.abs(lr_o_same - lr_l).max())
    # At equal training progress (per epoch start): the official length has one more step.
    frac = np.linspace(0, 1, 2001)[:-1]
    d_progress = float(
        np.abs(
            np.interp(frac, np.arange(total_o) / total_o, lr_o)
            - np.interp(frac, np.arange(total_l) / total_l, lr_l)
        ).max()
    )
    rows = [
        row(
            G,
            "LR schedule: warm-up + cosine (SDCLR, BCL: same function)",
            "ltcl.optim.warmup_cosine_factor via base.configure_optimizers: warm-up (i+1)/W, "
            "cosine to final_lr_ratio 0; scheduler stepped after the optimiser",
            "train_simCLR.py cosine_annealing in a LambdaLR stepped before the optimiser: "
            "warm-up (i+1)/W, cosine to 1e-6/lr",
            HARMLESS,
            "after the warm-up ltcl's cosine lags one step behind (f(i) vs f(i+1)) and ends at 0 "
            "instead of 1e-6 (2e-6 of the peak)",
            d_formula,
            f"per-step LR factor over {total_l:,} steps (2000 epochs x {ltcl_len}); at equal "
            f"training progress with the official {official_len} steps/epoch: {d_progress:.2g}",
        ),
        row(
            "all peers",
            "steps per epoch (last partial batch)",
            f"drop_last: {n_id} // {bs} = {ltcl_len} steps, {n_id - ltcl_len * bs} random images skipped each epoch",
            f"no drop_last: ceil({n_id} / {bs}) = {official_len} steps, the last one of "
            f"{n_id - (official_len - 1) * bs} images",
            HARMLESS,
            "each epoch skips < one batch of images, a different random set every epoch; "
            "the official short last batch has fewer negatives and noisier BN statistics instead",
            evidence="CIFAR-10-LT (11,165 images), batch 512",
        ),
    ]
    return rows


def sdclr_presets(repo: Path) -> list[dict[str, Any]]:
    G = SDCLR_SRC
    script = (repo / "cmds/shell_scrips/cifar-10-LT.sh").read_text()
    camera = (repo / "cmds/execute_hist/camera_ready.sh").read_text()
    train_src = (repo / "train_simCLR.py").read_text()
    off = {
        "lr": shell_default(script, "pretrain_lr"),
        "temp": shell_default(script, "pretrain_temp"),
        "batch": shell_default(script, "batch_size"),
        "epochs": shell_default(script, "pretrain_epochs"),
    }
    dual = "--prune_percent 0.9 --prune_dual_bn True" in camera
    sgd_wd = (
        "torch.optim.SGD(model.parameters(), lr=args.lr, weight_decay=1e-4, momentum=0.9)"
        in train_src
    )
    cfg = compose_ltcl(["method=sdclr", "model=cifar_resnet18", "data=cifar10_lt"])
    m, o, d = cfg["method"], cfg["optim"], cfg["data"]
    lr = o["schedule"]["base_lr"] * d["global_batch_size"] / o["schedule"]["reference_batch_size"]
    ok = (
        float(off["lr"]) == lr
        and float(off["temp"]) == m["temperature"]
        and int(off["batch"]) == d["global_batch_size"]
        and dual
        and m["prune_percent"] == 0.9
        and sgd_wd
        and o["schedule"]["weight_decay"] == 1e-4
        and m["projector_layers"] == 3
        and m["pruned_projector_norms"] == "own"
        and o["optimizer"]["momentum"] == 0.9
        and o["schedule"]["warmup_epochs"] == 10
    )
    rows = [
        row(
            G,
            "preset (method=sdclr, data=cifar10_lt, model=cifar_resnet18)",
            f"lr {lr} at batch {d['global_batch_size']}, temperature {m['temperature']}, prune "
            f"{m['prune_percent']}, projector {m['projector_layers']} layers with "
            f"{m['pruned_projector_norms']} pruned BNs, SGD m {o['optimizer']['momentum']} wd "
            f"{o['schedule']['weight_decay']}, warm-up {o['schedule']['warmup_epochs']} epochs",
            f"cmds/shell_scrips/cifar-10-LT.sh + camera_ready.sh: lr {off['lr']}, batch "
            f"{off['batch']}, temperature {off['temp']}, --prune_percent 0.9 --prune_dual_bn, "
            f"SGD m 0.9 wd 1e-4, warm-up 10 epochs, {off['epochs']} epochs",
            FIXED if ok else COULD_CHANGE,
            "885da71: 3-layer projector and own pruned BNs (--prune_dual_bn); the rest was "
            "already equal"
            if ok
            else "a preset value differs (see the two cells)",
            evidence=f"epochs: ltcl trainer.max_epochs {cfg['trainer']['max_epochs']} by default "
            f"(set per experiment), official {off['epochs']}",
        ),
        row(
            "all peers",
            "augmentation recipe (CIFAR)",
            "AugmentConfig recipe=cifar: RandomResizedCrop(32, 0.1-1, bicubic), flip, "
            "ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8, grayscale p 0.2, no blur, ImageNet "
            "mean/std; batched on the device (kornia, per-sample parameters)",
            "train_simCLR.py (SDCLR, COLT), data/augmentations.py (BCL): the same transforms "
            "per sample (torchvision, PIL); SDCLR/BCL normalise with ImageNet mean/std inside "
            "the model, COLT in the transform",
            HARMLESS,
            "same recipe and constants; the batched implementation matches the per-sample one "
            "in distribution, not image for image (tests/unit/test_transforms.py: float instead "
            "of 8-bit rounding, grey weights 0.299 vs 0.2989)",
            evidence="BCL's cifar_tfs_train object is checked value by value in the BCL part",
        ),
    ]
    # ---- numeric precision -----------------------------------------------------------------
    import re as _re

    amp = []
    for name, path in resolve_repos().items():
        for f in path.rglob("*.py"):
            if _re.search(r"autocast|GradScaler|\.half\(\)", f.read_text(errors="ignore")):
                amp.append(f"{name}/{f.relative_to(path)}")
    gpu = compose_ltcl(["trainer=gpu"])["trainer"]["precision"]
    rows.append(
        row(
            "all peers",
            "numeric precision of training",
            f"trainer.precision={gpu} (trainer=gpu / cpu): bf16 autocast where the device has "
            "bf16 (GPUs since Ampere, CPUs with AMX/AVX512-BF16), else fp16-mixed on GPU / "
            "fp32 on CPU",
            "float32 throughout: no autocast, GradScaler or .half() in SDCLR, BCL or COLT"
            + (f" (found: {amp})" if amp else ""),
            COULD_CHANGE,
            "bf16 matmuls and convolutions round to 8 mantissa bits: the same recipe, not the "
            "same arithmetic as the official runs (not measured here); trainer.precision=32-true "
            "reproduces it",
        )
    )
    # ---- evaluation protocol (a): the official call order of MultiStepLR -------------------
    import torch

    lin = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(lin.parameters(), lr=30.0, momentum=0.9)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[10, 20], gamma=0.1)
    official_lrs = []
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _epoch in range(1, 31):  # train_cifar.py main(): scheduler.step() then train()
            sched.step()
            official_lrs.append(round(opt.param_groups[0]["lr"], 10))
    ltcl_lrs = [round(30.0 * 0.1 ** sum(e >= m for m in (10, 20)), 10) for e in range(30)]
    split_o = [official_lrs.count(v) for v in (30.0, 3.0, 0.3)]
    split_l = [ltcl_lrs.count(v) for v in (30.0, 3.0, 0.3)]
    full = "--fixbn --wd 0 --model res18 --epochs 30 --lr ${tuneLr} --decreasing_lr 10,20" in script
    rows.append(
        row(
            "all peers",
            "evaluation: linear probe (a), SDCLR/COLT's train_cifar.py",
            "ltcl.evaluation.linear_probe_a (eval.linear_a): frozen backbone in eval mode, "
            "SGD m 0.9 wd 0 lr 30, batch 128, RandomCrop(32, 4) + flip, best val epoch tested; "
            f"epochs at lr 30 / 3 / 0.3: {split_l}",
            "train_cifar.py --fixbn --fixto layer4 --wd 0 --epochs 30 --lr 30 "
            "--decreasing_lr 10,20 (MultiStepLR stepped at the start of each 1-based epoch); "
            f"epochs at lr 30 / 3 / 0.3: {split_o}",
            HARMLESS if full else COULD_CHANGE,
            f"the LR drops one epoch later in ltcl ({split_l} vs {split_o} epochs); the rest of "
            "the protocol is the same",
            evidence="official order reproduced with torch's MultiStepLR (train_cifar.py parses "
            "arguments and loads CIFAR at import, so it is not imported)",
        )
    )
    few = "--fixbn --wd 0 --model res18 --epochs 100 --lr ${tuneLr} --decreasing_lr 40,60" in script
    rows.append(
        row(
            "all peers",
            "evaluation: few-shot (SDCLR/COLT's S_b, 1% of the LT set)",
            "eval.few_shot '1pct': probe (b) (Adam 1e-2 -> 1e-6, 500 epochs, fixed features, no "
            "augmentation) on a 1% balanced subset of the LT set",
            "train_cifar.py on split*_S_b.npy: the probe (a) recipe with 100 epochs, lr 30, "
            f"x0.1 at 40 and 60, crop + flip, test every 5 epochs{'' if few else ' (not found)'}",
            COULD_CHANGE,
            "a different probe recipe: ltcl's few-shot numbers are not comparable with the "
            "SDCLR/COLT few-shot tables (training is unaffected)",
        )
    )
    rows.append(
        row(
            "all peers",
            "evaluation: kNN",
            "eval.knn: cosine kNN, k 200, T 0.1, on the balanced training images",
            "none in SDCLR/COLT/BCL (they report linear probes only)",
            HARMLESS,
            "an extra protocol reported beside the probes; it changes no training",
        )
    )
    return rows


def sdclr_splits(repo: Path) -> list[dict[str, Any]]:
    import numpy as np

    from ltcl.data.splits import exponential_profile

    G = "all peers"
    ltcl10 = exponential_profile(4500, 10, 100)
    ltcl100 = exponential_profile(450, 100, 100)
    base = repo / "split"
    sizes10 = [
        len(np.load(base / f"cifar10_imbSub_with_subsets/split{k}_D_i.npy")) for k in range(1, 6)
    ]
    sizes100 = [
        len(np.load(base / f"cifar100_imbSub_with_subsets/cifar100_split{k}_D_i.npy"))
        for k in range(1, 6)
    ]
    per_class = ""
    labels_path = os.environ.get("CIFAR10_LABELS")
    ok_classes = None
    if labels_path and Path(labels_path).is_file():
        labels = np.load(labels_path)
        found = []
        for k in (1, 2, 3):
            idx = np.load(base / f"cifar10_imbSub_with_subsets/split{k}_D_i.npy")
            found.append(sorted(np.bincount(labels[idx], minlength=10).tolist(), reverse=True))
        ok_classes = all(f == ltcl10 for f in found)
        per_class = f"; per class (sorted) of split1-3: {found}"
    else:
        per_class = (
            "; per-class counts not checked: they need the 50,000 CIFAR-10 training labels in "
            "the official order (CIFAR10_LABELS=labels.npy), which this machine lacks (the shared "
            "JPEG copy is in class-folder order, its README)"
        )
    totals_ok = all(s == sum(ltcl10) for s in sizes10) and all(s == sum(ltcl100) for s in sizes100)
    # Label-free structure: the LT set inside the probe pool, disjoint from validation.
    from ltcl.data.splits import make_long_tailed_split

    train_pool = np.load(base / "cifar10/trainIdxList.npy")
    val = np.load(base / "cifar10/valIdxList.npy")
    inside = all(
        np.isin(np.load(base / f"cifar10_imbSub_with_subsets/split{k}_D_i.npy"), train_pool).all()
        and not np.isin(np.load(base / f"cifar10_imbSub_with_subsets/split{k}_D_i.npy"), val).any()
        for k in range(1, 6)
    )
    ours = make_long_tailed_split(np.repeat(np.arange(10), 5000), 10, 100, 4500, 500, seed=0)
    inside_l = (
        np.isin(ours.train_indices, ours.balanced_indices).all()
        and not np.isin(ours.train_indices, ours.val_indices).any()
    )
    structure = (
        f"probe pool / validation: official trainIdxList {len(train_pool)} + valIdxList "
        f"{len(val)}, each D_i inside the pool and disjoint from validation: {bool(inside)}; "
        f"ltcl (10 x 5000 labels, seed 0): balanced {len(ours.balanced_indices)} + val "
        f"{len(ours.val_indices)}, train inside balanced and disjoint from val: {bool(inside_l)}"
    )
    totals_ok = totals_ok and inside and inside_l and len(ours.balanced_indices) == len(train_pool)
    verdict = SAME if totals_ok and ok_classes is not False else COULD_CHANGE
    return [
        row(
            G,
            "long-tailed split sizes (published split*_D_i.npy vs ltcl's generator)",
            f"ltcl.data.splits.exponential_profile: CIFAR-10 n_max 4500, ratio 100 -> {ltcl10} "
            f"(sum {sum(ltcl10)}); CIFAR-100 n_max 450 -> sum {sum(ltcl100)}",
            f"SDCLR split/cifar10_imbSub_with_subsets/split1-5_D_i.npy: {sizes10} images; "
            f"cifar100 split1-5: {sizes100} (the same files in COLT)",
            verdict,
            "" if verdict == SAME else "a total or a per-class count differs",
            evidence="totals equal; "
            + structure
            + per_class
            + "; the images themselves differ (seeded draw)",
        )
    ]


# ---------------------------------------------------------------------------------------------
# BCL (MediaBrain-SJTU/BCL): RandAugment ops, strengths, weights, loss EMA, steps, presets, probe
# ---------------------------------------------------------------------------------------------


def cifar_images(n: int):
    """n real CIFAR-10 training images (uint8 HxWx3) from the shared JPEG archive, or smooth
    random images when it is not there."""
    import io
    import tarfile

    import numpy as np
    from PIL import Image

    shared = Path(os.environ.get("LTCL_SHARED_DATA", ROOT.parent / "shared" / "data"))
    archive = shared / "cifar10-jpeg.tar.gz"
    if archive.is_file():
        per_class = -(-n // 10)
        taken: dict[str, list] = {}
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = member.name.split("/")
                if not (member.isfile() and member.name.endswith(".jpg") and "train" in parts):
                    continue
                chosen = taken.setdefault(parts[-2], [])
                if len(chosen) < per_class:
                    data = tar.extractfile(member).read()
                    chosen.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
                if sum(len(v) for v in taken.values()) >= n and len(taken) >= 10:
                    break
        images = [im for key in sorted(taken) for im in taken[key]][:n]
        if len(images) == n:
            return np.stack(images), "CIFAR-10 JPEG copy, all classes"
    rnd = (random_images(n, 9).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return rnd, "smooth random images"


class _FakeRandom:
    """Stands for the ``random`` module inside BCL's randaug.py: chooses one op, fixes the
    sign draw (random() > 0.5 negates v) and the coin (uniform)."""

    def __init__(self, op_index: int, negate: bool):
        self.op_index, self.negate = op_index, negate

    def choices(self, population, k):
        return [population[self.op_index]] * k

    def random(self):
        return 1.0 if self.negate else 0.0

    def uniform(self, a, b):
        return 0.0


class _FakeNumpy:
    """Stands for ``np`` inside BCL's randaug.py: np.random.uniform returns fixed cutout
    centres (x then y); everything else is numpy."""

    def __init__(self, values):
        import numpy as np

        self._np, self._values = np, list(values)
        outer = self

        class _Random:
            def uniform(self, *args, **kwargs):
                return outer._values.pop(0)

        self.random = _Random()

    def __getattr__(self, name):
        return getattr(self._np, name)


def part_bcl(repo: Path) -> list[dict[str, Any]]:
    rows = bcl_ops(repo)
    rows += bcl_draws(repo)
    rows += bcl_weights_and_strength(repo)
    rows += bcl_steps(repo)
    rows += bcl_presets(repo)
    return rows


def bcl_ops(repo: Path) -> list[dict[str, Any]]:
    import data.randaug as randaug
    import numpy as np
    import torch
    from PIL import Image

    from ltcl.data.randaugment import OPS, SIGNED_OPS, BatchedRandAugment, RandAugmentDraw

    G = "BCL"
    imgs, source = cifar_images(16)
    aug = BatchedRandAugment()
    official_list = randaug.augment_list()
    names = [op.__name__ for op, _, _ in official_list]
    rows = []
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).double().contiguous() / 255.0
    n, _, h, w = x.shape
    summary, ties = [], {}
    gm = torch.Generator().manual_seed(99)
    # Magnitudes: continuous ones per image (as BCL's m = 10 + 20w in training) decide the
    # verdict; round ones (0, 7.5, ..., 30) put sample points exactly on pixel edges (ties).
    settings = [(torch.rand(n, generator=gm, dtype=torch.float64) * 30, False) for _ in range(3)]
    settings += [
        (torch.full((n,), v, dtype=torch.float64), True) for v in (0.0, 7.5, 15.0, 22.5, 30.0)
    ]
    for idx, op_name in enumerate(OPS):
        stats = {False: [0.0, 0.0, 0.0], True: [0.0, 0.0, 0.0]}
        for mags, is_round in settings:
            if is_round and op_name not in SIGNED_OPS and float(mags[0]) not in (0.0, 30.0):
                continue  # ties only concern the geometric ops; the ends of the range for all
            for negate in (False, True) if op_name in SIGNED_OPS else (False,):
                centres = torch.rand(
                    n, 1, 2, generator=torch.Generator().manual_seed(idx), dtype=torch.float64
                )
                outs = []
                for i in range(n):
                    # BCL's cutout centre x0 = np.random.uniform(w) is fed the same pixel value.
                    randaug.random = _FakeRandom(idx, negate)
                    randaug.np = _FakeNumpy(
                        [float(centres[i, 0, 0]) * w, float(centres[i, 0, 1]) * h]
                    )
                    op = randaug.RandAugment_prob(1, float(mags[i]), 1.0)
                    outs.append(np.asarray(op(Image.fromarray(imgs[i]))))
                theirs = torch.from_numpy(np.stack(outs)).permute(0, 3, 1, 2).double() / 255.0
                draw = RandAugmentDraw(
                    ops=torch.full((n, 1), idx, dtype=torch.long),
                    applied=torch.ones(n, 1, dtype=torch.bool),
                    signs=torch.full((n, 1), -1.0 if negate else 1.0, dtype=torch.float64),
                    centres=centres,
                )
                ours = aug.apply(x, mags, draw)
                diff = (ours - theirs).abs()
                st = stats[is_round]
                st[0] = max(st[0], float(diff.max()))
                st[1] = max(st[1], float(diff.mean()))
                st[2] = max(st[2], float((diff > 1.5 / 255).float().mean()))
        summary.append((op_name, names[idx], *stats[False]))
        if op_name in SIGNED_OPS and stats[True][0] > max(stats[False][0], 1.0 / 255 + 1e-9):
            ties[op_name] = stats[True]
    import random as _random

    randaug.random, randaug.np = _random, np
    one_level = 1.0 / 255 + 1e-9
    same = [s for s in summary if s[2] <= one_level]
    near = [s for s in summary if s[2] > one_level and s[4] <= 0.02 and s[3] <= 1.0 / 255]
    far = [s for s in summary if s not in same and s not in near]

    def fmt(items):
        return ", ".join(
            f"{a} (max {c * 255:.1f}/255, mean {d * 255:.2f}/255, {e:.1%} px > 1.5/255)"
            for a, b, c, d, e in items
        )

    order_ok = [s[0] for s in summary] == [
        "shear_x",
        "shear_y",
        "translate_x",
        "translate_y",
        "rotate",
        "autocontrast",
        "invert",
        "equalize",
        "solarize",
        "posterize",
        "contrast",
        "color",
        "brightness",
        "sharpness",
        "cutout",
    ] and names == [
        "ShearX",
        "ShearY",
        "TranslateX",
        "TranslateY",
        "Rotate",
        "AutoContrast",
        "Invert",
        "Equalize",
        "Solarize",
        "Posterize",
        "Contrast",
        "Color",
        "Brightness",
        "Sharpness",
        "Cutout",
    ]
    base = (
        f"each op on 16 images ({source}), 3 x 16 continuous magnitudes in (0, 30) and 0, 30 "
        "(both signs for the geometric ops), PIL (8-bit) vs float"
    )
    if ties:
        rows.append(
            row(
                G,
                "RandAugment geometric ops at round magnitudes (ties)",
                "BatchedRandAugment: affine_grid + grid_sample(nearest)",
                "PIL Image.transform(AFFINE) / rotate, nearest",
                HARMLESS,
                "at round magnitudes (0, 7.5, ..., 30) many sample points fall exactly on a "
                "pixel edge and the two round the tie to different neighbours, moving whole "
                "rows by a pixel: "
                + ", ".join(
                    f"{k} (max {v[0] * 255:.0f}/255, mean {v[1] * 255:.2f}/255, {v[2]:.1%} px)"
                    for k, v in ties.items()
                )
                + "; BCL's magnitudes 10 + 20w (5 + 25wU) are continuous, so ties are rare "
                "(documented in ltcl/data/randaugment.py)",
                max(v[0] for v in ties.values()),
            )
        )
    rows.append(
        row(
            G,
            "RandAugment ops within one 8-bit level",
            "ltcl.data.randaugment.BatchedRandAugment (float, batched)",
            "data/randaug.py augment_list() through RandAugment_prob(1, m, p=1) on PIL images",
            SAME if order_ok else COULD_CHANGE,
            "" if order_ok else "op order differs",
            max(s[2] for s in same) if same else None,
            base + "; ops: " + ", ".join(s[0] for s in same),
        )
    )
    if near:
        rows.append(
            row(
                G,
                "RandAugment ops off by more than one level on a few pixels",
                "BatchedRandAugment",
                "data/randaug.py",
                HARMLESS,
                "float arithmetic instead of PIL's 8-bit rounding and nearest-neighbour ties "
                "on pixel edges (documented in ltcl/data/randaugment.py): " + fmt(near),
                max(s[2] for s in near),
                base,
            )
        )
    if far:
        rows.append(
            row(
                G,
                "RandAugment ops that differ widely",
                "BatchedRandAugment",
                "data/randaug.py",
                COULD_CHANGE,
                fmt(far),
                max(s[2] for s in far),
                base,
            )
        )
    rows.append(
        row(
            G,
            "cutout centre distribution",
            "uniform on [0, W) x [0, H) (RandAugmentDraw.centres)",
            "CutoutAbs: np.random.uniform(w), i.e. uniform on (1, w] (low=w, high=1.0)",
            HARMLESS,
            "the official draw is shifted by up to one pixel (never in the first column/row); "
            "with the same centre the ops agree (row above)",
        )
    )
    return rows


def bcl_draws(repo: Path) -> list[dict[str, Any]]:
    """How RandAugment_prob draws (k ops with replacement, each applied iff U < p, one value
    for all) against BatchedRandAugment.draw, by frequencies over many calls."""
    import random

    import data.randaug as randaug
    import numpy as np
    import torch

    from ltcl.data.randaugment import BatchedRandAugment

    G = "BCL"
    random.seed(0)
    calls, k, p = 6000, 2, 0.6
    official = randaug.RandAugment_prob(k, 20, p)
    applied = np.zeros(15)
    values = set()

    def recorder(i):
        def op(img, v):
            applied[i] += 1
            values.add(round(v, 9) if i != 9 else None)
            return img

        return op

    official.augment_list = [
        (recorder(i), lo, hi) for i, (_, lo, hi) in enumerate(official.augment_list)
    ]
    for _ in range(calls):
        official(None)
    draw = BatchedRandAugment().draw(
        calls, k, torch.full((calls,), p, dtype=torch.float64), torch.Generator().manual_seed(0)
    )
    ours = np.bincount(draw.ops[draw.applied].numpy(), minlength=15)
    rate_o, rate_l = applied.sum() / (calls * k), float(draw.applied.float().mean())
    freq_o, freq_l = applied / applied.sum(), ours / ours.sum()
    d = float(np.abs(freq_o - freq_l).max())
    return [
        measured(
            G,
            "RandAugment_prob draws: k ops with replacement, each applied iff U < p",
            "BatchedRandAugment.draw (ops uniform, coins, signs, centres from a CPU generator)",
            "data/randaug.py RandAugment_prob.__call__ (random.choices, random.uniform < p)",
            d,
            0.02,
            HARMLESS,
            "same distribution, different random streams (torch generator vs Python random)",
            f"{calls} calls, k {k}, p {p}: applied rate {rate_o:.3f} official / {rate_l:.3f} ltcl; "
            f"max op-frequency gap {d:.3f} (expected sd ~0.004)",
        )
    ]


def bcl_weights_and_strength(repo: Path) -> list[dict[str, Any]]:
    import argparse as ap

    import data.memoboosted_cifar100 as memo
    import numpy as np
    import torch

    from ltcl.data.randaugment import bcl_strength, bcl_weights

    G = "BCL"
    rows = []
    g = torch.Generator().manual_seed(1)
    momentum_loss = torch.rand(3, 500, generator=g, dtype=torch.float64) * 5
    theirs = memo.calculate_momentum_weight(momentum_loss, 3)
    ours = bcl_weights(momentum_loss[2])
    rows.append(
        measured(
            G,
            "boost weights from the loss EMA",
            "ltcl.data.randaugment.bcl_weights",
            "data/memoboosted_cifar100.py calculate_momentum_weight",
            max_diff(ours, torch.from_numpy(np.asarray(theirs))),
            1e-12,
            evidence="500 images; z-score (unbiased std), / max|z| / 2 + 1/2",
        )
    )
    # Strength: memoboosted_CIFAR100.__getitem__ builds RandAugment_prob(k, m, p) per image.
    seen = []

    class Recorder:
        def __init__(self, n, m, p):
            seen.append((n, float(np.asarray(m).reshape(-1)[0]), float(p)))

        def __call__(self, img):
            return img

    imgs, _ = cifar_images(4)
    n = 64
    weights = torch.rand(n, generator=g, dtype=torch.float64)
    weights[0], weights[1] = 0.0, 1.0
    worst, evidence = 0.0, []
    saved = memo.RandAugment_prob
    saved_rand = memo.np.random.rand
    try:
        memo.RandAugment_prob = Recorder
        for variant, rand_k in (("I", 1), ("D", 2)):
            gen = torch.Generator().manual_seed(7)
            k, mags, probs = bcl_strength(weights, variant, gen)
            # The U(0, 1) draws ltcl made, fed to BCL's np.random.rand(1) in the same order.
            us = list(
                torch.rand(
                    n, generator=torch.Generator().manual_seed(7), dtype=torch.float64
                ).numpy()
            )
            memo.np.random.rand = lambda *a, us=us: np.array([us.pop(0)])
            ds = object.__new__(memo.memoboosted_CIFAR100)
            ds.data = np.stack([imgs[i % len(imgs)] for i in range(n)])
            ds.args = ap.Namespace(rand_k=rand_k, rand_strength=30)
            ds.momentum_weight = weights.numpy()
            seen.clear()
            for i in range(n):
                ds[i]
            ks = {s[0] for s in seen}
            d = max(
                max_diff(mags, torch.tensor([s[1] for s in seen], dtype=torch.float64)),
                max_diff(probs, torch.tensor([s[2] for s in seen], dtype=torch.float64)),
            )
            worst = max(worst, d if ks == {k} else float("inf"))
            evidence.append(f"BCL-{variant}: k {k} vs {sorted(ks)}, m and p max diff {d:.2g}")
    finally:
        memo.RandAugment_prob = saved
        memo.np.random.rand = saved_rand
    rows.append(
        measured(
            G,
            "boost strength: ops k, magnitude m, probability p per image",
            "ltcl.data.randaugment.bcl_strength (I: k 1, m = 10 + 20w; D: k 2, m = 5 + 25wU)",
            "data/memoboosted_cifar100.py memoboosted_CIFAR100.__getitem__ (rand_k 1 / 2, "
            "rand_strength 30)",
            worst,
            1e-12,
            evidence="; ".join(evidence) + "; one m per image for both views in both",
        )
    )
    # The base recipe that the boost follows.
    from data.augmentations import cifar_tfs_train

    from ltcl.data.transforms import AugmentConfig

    t = cifar_tfs_train.transforms
    rrc, flip, jitter, gray = t[0], t[1], t[2], t[3]
    cj = jitter.transforms[0]
    cfg = AugmentConfig(recipe="cifar")
    official = (
        rrc.size,
        tuple(rrc.scale),
        str(rrc.interpolation).split(".")[-1].lower(),
        flip.p,
        (cj.brightness[1] - 1, cj.contrast[1] - 1, cj.saturation[1] - 1, cj.hue[1]),
        jitter.p,
        gray.p,
    )
    ours = (
        (cfg.size, cfg.size),
        tuple(cfg.crop_scale),
        cfg.interpolation,
        cfg.flip_p,
        tuple(cfg.jitter_strength),
        cfg.jitter_p,
        cfg.grayscale_p,
    )
    close = all(
        (np.allclose(a, b) if not isinstance(a, str) else a == b)
        for a, b in zip(ours, official, strict=True)
    )
    rows.append(
        row(
            G,
            "base augmentation values (before the boost)",
            f"AugmentConfig(recipe='cifar'): {ours}",
            f"data/augmentations.py cifar_tfs_train: {official}",
            SAME if close and cfg.blur_p == 0 else COULD_CHANGE,
            "" if close else "a recipe value differs",
            evidence="size, crop scale, interpolation, flip p, jitter (b, c, s, h), jitter p, grey p; "
            "both add the boost after grayscale; BCL normalises inside the model, ltcl after the boost",
        )
    )
    return rows


def bcl_official_simclr(seed: int):
    import torch
    from models.simclr import SimCLR

    torch.manual_seed(seed)
    model = SimCLR(num_class=100, network="resnet18").double()
    randomise_bn(
        [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d)],
        seed + 1,
    )
    return model


def bcl_official_sdclr(seed: int):
    import torch
    from models.resnet_prune_multibn import batch_norm_multiple
    from models.sdclr import SDCLR

    torch.manual_seed(seed)
    model = SDCLR(num_class=100, network="resnet18").double()
    bns = [m for m in model.modules() if isinstance(m, batch_norm_multiple)]
    randomise_bn([b for m in bns for b in m.bn_list], seed + 1)
    return model


def copy_plain(official_backbone, official_projector, module) -> None:
    """Single-BN official ResNet-18 + 2-layer proj_head -> ltcl backbone + projector (by order:
    the state_dict entries of the backbone minus its fc and input normalisation)."""
    from torch import nn

    src = [
        v
        for k, v in official_backbone.state_dict().items()
        if not k.startswith(("fc.", "fc2.", "normalize.", "id_ood"))
    ]
    dst = list(module.backbone.state_dict().values())
    copy_by_order(dst, src, "backbone state")
    lin_o = [official_projector.fc1, official_projector.fc2]
    copy_by_order(
        [p for m in module.projector if isinstance(m, nn.Linear) for p in m.parameters()],
        [p for m in lin_o for p in m.parameters()],
        "projector",
    )
    for d, o in zip(
        [m for m in module.projector if isinstance(m, nn.BatchNorm1d)],
        [official_projector.bn1, official_projector.bn2],
        strict=True,
    ):
        copy_bn(d, o)


def bcl_steps(repo: Path) -> list[dict[str, Any]]:
    """BCL-I (train.py train) and BCL-D (train_sdclr.py train_prune): 2 epochs x 2 steps from
    the same weights on the same views; losses, per-image loss EMA, weights, boost weights."""
    import argparse as ap

    import torch
    import train as bcl_train
    import train_sdclr as bcl_train_sdclr
    from data.memoboosted_cifar100 import calculate_momentum_weight
    from losses.nt_xent import NT_Xent_Loss

    from ltcl.methods.bcl import BCLModule
    from ltcl.utils.per_sample import PerSampleEMA

    rows = []
    batch, per_epoch, epochs, lr = 4, 1, 2, 0.05
    n = batch * per_epoch
    images = random_images(2 * n, 300)
    # Each epoch visits the images in another order (as a shuffled loader would).
    orders = [torch.tensor([2, 0, 3, 1]), torch.tensor([1, 3, 0, 2])]
    for variant, wd in (("I", 5e-4), ("D", 1e-4)):
        if variant == "I":
            official = bcl_official_simclr(0)
        else:
            official = bcl_official_sdclr(0)
        module = BCLModule(
            backbone={"name": "cifar_resnet18"},
            projector={"hidden_dim": None, "out_dim": 128},
            variant=variant,
            temperature=0.2,
            prune_percent=0.9,
            projector_layers=2,
            pruned_projector_norms="own",
            channels_last=False,
        ).double()
        if variant == "I":
            copy_plain(official.backbone, official.projector, module)
            with torch.no_grad():
                norm = official.backbone.normalize
        else:
            sdclr_like = official.backbone  # prune_resnet18_dual with fc = proj_head(twoLayerProj)
            sdclr_copy_weights(sdclr_like, module)
            norm = sdclr_like.normalize
        module.loss_ema = PerSampleEMA(n, 0.97, key="method.loss_ema")  # as on_fit_start
        opt = ltcl_sgd(
            [module.backbone, module.projector, *module.extra_trainable_modules()], lr, wd, False
        )
        optimizer = torch.optim.SGD(official.parameters(), lr=lr, weight_decay=wd, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
        criterion = NT_Xent_Loss(temp=0.2, average=False)
        args = ap.Namespace(
            momentum_loss_beta=0.97, print_freq=10**6, prune_percent=0.9, random_prune_percent=0.0
        )
        shadow = torch.zeros(n, dtype=torch.float64)
        momentum_loss = torch.zeros(epochs, n, dtype=torch.float64)
        losses_o, losses_l = [], []
        original = criterion.forward

        def recording(*a, original=original, **k):
            out = original(*a, **k)
            recording.calls.append(float(out.mean()))
            return out

        recording.calls = []
        criterion.forward = recording
        weights_o, weights_l = [], []
        for epoch in range(1, epochs + 1):
            order = orders[epoch - 1]
            loader = OneEpochLoader()
            ltcl_batches = []
            for s in range(per_epoch):
                idx = order[s * batch : (s + 1) * batch]
                v1, v2 = images[idx], images[n + idx]
                loader.append((torch.stack([v1, v2], dim=1), idx))
                with torch.no_grad():
                    ltcl_batches.append(id_batch(idx, norm(v1), norm(v2)))
            if variant == "I":
                shadow, momentum_loss = bcl_train.train(
                    loader,
                    official,
                    criterion,
                    optimizer,
                    scheduler,
                    epoch,
                    Log(),
                    shadow,
                    momentum_loss,
                    args=args,
                )
            else:
                shadow, momentum_loss = bcl_train_sdclr.train_prune(
                    loader,
                    official,
                    criterion,
                    optimizer,
                    scheduler,
                    epoch,
                    Log(),
                    shadow,
                    momentum_loss,
                    args=args,
                )
            module.train()
            if module.pruned is not None:
                module.pruned.update_masks(module.backbone)
            for b in ltcl_batches:
                opt.zero_grad()
                loss, _ = module.training_loss(b)
                loss.backward()
                opt.step()
                losses_l.append(float(loss))
            module._refresh_weights()  # on_train_epoch_end
            weights_o.append(torch.from_numpy(calculate_momentum_weight(momentum_loss, epoch)))
            weights_l.append(module.boost_weights.double())
        calls = recording.calls
        losses_o = calls if variant == "I" else calls[0::2]
        d_loss = max(abs(a - b) for a, b in zip(losses_l, losses_o, strict=True))
        d_ema = max_diff(module.loss_ema.values, shadow)
        d_w = max(max_diff(a, b) for a, b in zip(weights_l, weights_o, strict=True))
        check = BCLModule(
            backbone={"name": "cifar_resnet18"},
            projector={"hidden_dim": None, "out_dim": 128},
            variant=variant,
            prune_percent=0.9,
            projector_layers=2,
            pruned_projector_norms="own",
            channels_last=False,
        ).double()
        if variant == "I":
            copy_plain(official.backbone, official.projector, check)
        else:
            sdclr_copy_weights(official.backbone, check)
        final = {
            k: v
            for k, v in check.state_dict().items()
            if "running" not in k and "num_batches" not in k and "mask" not in k
        }
        d_par = max(max_diff(module.state_dict()[k], v) for k, v in final.items())
        what = (
            "train.py train(): SimCLR model, 2-layer proj_head, loss per image (average=False)"
            if variant == "I"
            else "train_sdclr.py train_prune(): models/sdclr.py SDCLR (prune_resnet18_dual, "
            "proj_head(twoLayerProj=True), own pruned BNs)"
        )
        rows.append(
            measured(
                "BCL",
                f"BCL-{variant} training: {epochs} epochs x {per_epoch} steps (batch {batch}, fp64, "
                f"wd {wd}, no boost on these fixed views): losses and weights",
                f"BCLModule(variant={variant}).training_loss + SGD (wd on every parameter)",
                what,
                max(d_loss, d_par),
                1e-9,
                evidence=f"loss diff {d_loss:.2g}, final weight diff {d_par:.2g}; losses ltcl "
                + ", ".join(f"{v:.5f}" for v in losses_l)
                + " / official "
                + ", ".join(f"{v:.5f}" for v in losses_o),
            )
        )
        rows.append(
            measured(
                "BCL",
                f"BCL-{variant} per-image loss EMA and boost weights after each epoch",
                "PerSampleEMA(0.97) of nt_xent(per_sample=True), BCLModule._refresh_weights",
                "shadow / momentum_loss in train() (epoch 1 raw, then 0.97), "
                "update_momentum_weight -> calculate_momentum_weight",
                max(d_ema, d_w),
                1e-6,
                evidence=f"loss-EMA diff {d_ema:.2g}, boost-weight diff {d_w:.2g}: ltcl feeds the "
                "EMA float32 losses (training is fp32 in both, the official EMA is a float32 "
                "tensor), hence ~1e-7 here in fp64",
            )
        )
    return rows


def bcl_presets(repo: Path) -> list[dict[str, Any]]:
    import re

    import numpy as np
    import torch

    readme = (repo / "README.md").read_text()

    def command(name):
        m = re.search(rf"```train {name}\n(.*?)\n```", readme, flags=re.S)
        return m.group(1) if m else ""

    def flag(cmd, name, default):
        m = re.search(rf"--{name} (\S+)", cmd)
        return m.group(1) if m else default

    rows = []
    for variant, key in (("I", "BCL-I"), ("D", "BCL-D")):
        cmd = command(key)
        cfg = compose_ltcl(
            ["method=bcl" if variant == "I" else "method=bcl_d", "model=cifar_resnet18"]
        )
        m = cfg["method"]
        off_wd, off_k = float(flag(cmd, "weight_decay", "nan")), int(flag(cmd, "rand_k", "0"))
        off_t, off_lr = float(flag(cmd, "temperature", "nan")), float(flag(cmd, "lr", "nan"))
        proj = "2 layers" + (", own pruned BNs" if variant == "D" else "")
        ours_proj = f"{m['projector_layers']} layers" + (
            f", {m.get('pruned_projector_norms')} pruned BNs" if variant == "D" else ""
        )
        ok = (
            m["weight_decay"] == off_wd
            and m["projector_layers"] == 2
            and (variant == "I" or m.get("pruned_projector_norms") == "own")
            and m["temperature"] == off_t
            and m["loss_ema"] == 0.97
            and (variant == "I" or m["prune_percent"] == 0.9)
        )
        rows.append(
            row(
                "BCL",
                f"BCL-{variant} preset (method={'bcl' if variant == 'I' else 'bcl_d'})",
                f"weight decay {m['weight_decay']}, temperature {m['temperature']}, loss EMA "
                f"{m['loss_ema']}, projector {ours_proj}, k {1 if variant == 'I' else 2}",
                f"README '{key}' command: --weight_decay {off_wd} --temperature {off_t} --lr "
                f"{off_lr} --rand_k {off_k}, momentum_loss_beta 0.97, projector {proj}",
                FIXED if ok else COULD_CHANGE,
                "885da71: BCL-I weight decay 5e-4 (method.weight_decay), BCL-D's 2-layer "
                "projector with own pruned BNs"
                if ok
                else "a preset value differs",
            )
        )
    # Probe (b): run BCL's eval_sgd on tiny features and record its optimiser and LR per epoch.
    import eval_cifar

    from ltcl.evaluation.linear_probe import exponential_lr

    seen = {}

    class RecAdam(torch.optim.Adam):
        def __init__(self, params, lr, weight_decay):
            seen["adam"] = (lr, weight_decay)
            super().__init__(params, lr=lr, weight_decay=weight_decay)

    class RecExp(torch.optim.lr_scheduler.ExponentialLR):
        def __init__(self, optimizer, gamma):
            self._opt = optimizer
            super().__init__(optimizer, gamma)
            seen["lrs"] = []  # from here on: the LR each epoch ran at, recorded at its step()

        def step(self, *a, **k):
            seen.setdefault("lrs", []).append(self._opt.param_groups[0]["lr"])
            super().step(*a, **k)

    saved = (eval_cifar.optim.Adam, eval_cifar.optim.lr_scheduler.ExponentialLR)
    eval_cifar.optim.Adam, eval_cifar.optim.lr_scheduler.ExponentialLR = RecAdam, RecExp
    try:
        g = torch.Generator().manual_seed(0)
        xt, yt = torch.randn(30, 4, generator=g), torch.arange(30) % 3
        eval_cifar.eval_sgd(xt, yt, xt, yt, topk=[1])
    finally:
        eval_cifar.optim.Adam, eval_cifar.optim.lr_scheduler.ExponentialLR = saved
    import inspect

    sig = inspect.signature(eval_cifar.eval_sgd).parameters
    epochs, bs = sig["epoch"].default, sig["batch_size"].default
    lrs_o = np.array(seen["lrs"])
    lrs_l = np.array([exponential_lr(e, epochs, 1e-2, 1e-6) for e in range(epochs)])
    rel = float(np.abs(lrs_l / lrs_o - 1).max())
    cfg = compose_ltcl([])
    lb = cfg["eval"]["linear_b"]
    same_settings = (
        lb["epochs"] == epochs
        and lb["batch_size"] == bs
        and seen["adam"] == (lb["lr"], lb["weight_decay"])
    )
    rows.append(
        row(
            "all peers",
            "evaluation: linear probe (b), BCL's eval_cifar.eval_sgd",
            f"eval.linear_b: Adam lr {lb['lr']} wd {lb['weight_decay']}, {lb['epochs']} epochs, "
            f"batch {lb['batch_size']}, lr x (final/lr)^(e/(E-1)): epoch 499 at {lrs_l[-1]:.3g}",
            f"eval_sgd: Adam {seen['adam']}, {epochs} epochs, batch {bs}, ExponentialLR gamma "
            f"(1e-6/1e-2)^(1/E) stepped per epoch: epoch 499 at {lrs_o[-1]:.3g}",
            HARMLESS if same_settings else COULD_CHANGE,
            f"ltcl's decay reaches 1e-6 on the last epoch, BCL's one step later (never used): LRs "
            f"differ by at most {rel:.1%} (relative)"
            if same_settings
            else "a probe setting differs",
            evidence="official LRs recorded from eval_sgd itself (Adam and ExponentialLR wrapped)",
        )
    )
    return rows


# ---------------------------------------------------------------------------------------------
# COLT (JianhongBai/COLT): tail score, SupCon, steps, budgets, k-means, the pick, batches, LR
# ---------------------------------------------------------------------------------------------


def colt_args(**kw):
    import argparse as ap

    base = dict(
        COLT=True,
        temperature=0.2,
        sup_weight=0.0,
        beta=0.97,
        k_largest_logits=10,
        k_means_clusters=10,
        cluster_temperature=1.0,
        budget=10000,
        batch_size=512,
        print_freq=10**6,
        warmup=100,
        sample_interval=25,
    )
    base.update(kw)
    return ap.Namespace(**base)


def part_colt(repo: Path) -> list[dict[str, Any]]:
    init_gloo()
    rows = colt_losses(repo)
    rows += colt_steps(repo)
    rows += colt_kmeans_and_pick(repo)
    rows += colt_batches(repo)
    rows += colt_schedule(repo)
    rows += colt_presets(repo)
    return rows


def colt_losses(repo: Path) -> list[dict[str, Any]]:
    import torch
    import utils as colt_utils

    from ltcl.losses.domain import domain_supcon_loss
    from ltcl.losses.psd import psd_loss
    from ltcl.ood.tail_score import colt_tail_score

    G = "COLT"
    g = torch.Generator().manual_seed(4)
    n_id, n_ood, d = 10, 6, 32
    b = n_id + n_ood
    z1 = torch.randn(b, d, dtype=torch.float64, generator=g, requires_grad=True)
    z2 = torch.randn(b, d, dtype=torch.float64, generator=g, requires_grad=True)
    ids = torch.arange(100, 100 + n_id)
    # COLT's batch: ID and OOD rows mixed (OOD index -1), views adjacent; ltcl: ID rows first.
    perm = torch.randperm(b, generator=g)
    index = torch.cat([ids, torch.full((n_ood,), -1)])[perm]
    inter = torch.stack([z1[perm], z2[perm]], dim=1).reshape(2 * b, d)
    rows = []
    for sup in (0.0, 0.2):
        inter = torch.stack([z1[perm], z2[perm]], dim=1).reshape(2 * b, d)
        neg_logits, _, loss_o = colt_utils.nt_xent(
            inter, t=0.2, index=index, sup_weight=sup, args=colt_args(sup_weight=sup)
        )
        pseudo = torch.full((b,), -1)
        loss_l = psd_loss(z1, z2, pseudo, 0.2, beta=0.0)
        if sup > 0:
            is_ood = torch.arange(b) >= n_id
            loss_l = loss_l + sup * domain_supcon_loss(z1, z2, is_ood, 0.2)
        g_o = torch.autograd.grad(loss_o, [z1, z2])
        g_l = torch.autograd.grad(loss_l, [z1, z2])
        dd = max(max_diff(loss_o, loss_l), *(max_diff(a, c) for a, c in zip(g_o, g_l, strict=True)))
        rows.append(
            measured(
                G,
                "COLT loss: NT-Xent"
                + (
                    " + sup_weight 0.2 x domain SupCon (ID vs OOD)"
                    if sup
                    else " (sup_weight 0, CIFAR-10)"
                ),
                "psd_loss(beta 0)"
                + (" + lambda_dd x ltcl.losses.domain.domain_supcon_loss" if sup else ""),
                "utils.py nt_xent(features, t, index, sup_weight, args) on a mixed ID/OOD batch",
                dd,
                1e-12 if sup == 0 else 1e-6,
                evidence=f"{n_id} ID + {n_ood} OOD images, value and gradients"
                + (
                    ""
                    if sup == 0
                    else "; COLT's positive mask is float32, so its 1/|P| is rounded "
                    "to float32 (~1e-8 relative) in this fp64 test"
                ),
            )
        )
    with torch.no_grad():
        neg_logits, _, _ = colt_utils.nt_xent(
            inter.detach(), t=0.2, index=index, sup_weight=0.0, args=colt_args()
        )
        mean = neg_logits.mean(dim=0)
        top = mean.sort(dim=1, descending=True)[0][:, :10].sum(dim=1)  # train(): per ID row
        official = torch.zeros(n_id, dtype=torch.float64)
        for row_i, idx in enumerate(index.tolist()):
            if idx != -1:
                official[idx - 100] = top[row_i]
        ours = colt_tail_score(z1.detach(), z2.detach(), n_id, 0.2, 10)
    rows.append(
        measured(
            G,
            "tail score of one step (top-10 negative softmax mass, views averaged)",
            "ltcl.ood.tail_score.colt_tail_score(z1, z2, num_id, 0.2, 10)",
            "nt_xent's neg_logits, .mean(dim=0), top-k sum per ID row (train_simCLR.py train())",
            max_diff(ours, official),
            1e-6,
            evidence=f"{n_id} ID + {n_ood} OOD rows in a shuffled COLT batch; ltcl takes the "
            "softmax in float32 (training is fp32 in both), hence ~1e-7 in this fp64 test",
        )
    )
    return rows


def colt_official_model(seed: int):
    import torch
    from models.resnet import resnet18
    from models.utils import proj_head

    torch.manual_seed(seed)
    model = resnet18(pretrained=False, imagenet=False, num_classes=100)
    model.fc = proj_head(model.fc.in_features, 128)
    model = model.double()
    randomise_bn(
        [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d)],
        seed + 1,
    )
    return model


def colt_ltcl_guide(lambda_dd: float):
    from ltcl.methods.guide import GuideModule

    sampler = dict(
        strategy="colt",
        warmup_epochs=100,
        interval=25,
        budget=10000,
        num_clusters=10,
        kmeans="sklearn",
        kmeans_inits=10,
        kmeans_iterations=300,
        budget_remainder="last",
        tail_score="colt",
        batch_mode="mix",
        colt_temperature=1.0,
        colt_topk=10,
        colt_ema=0.97,
    )
    module = GuideModule(
        backbone={"name": "cifar_resnet18"},
        projector={"hidden_dim": None, "out_dim": 128},
        sampler=sampler,
        beta=0.0,
        lambda_dd=lambda_dd,
        domain_loss="supcon",
        temperature=0.2,
        channels_last=False,
    ).double()
    # The guide calls domain_head(feats.float()) (a zero-weighted term with domain_loss=supcon,
    # there for DDP): the head stays float32 in this fp64 harness.
    module.domain_head.float()
    return module


def colt_steps(repo: Path) -> list[dict[str, Any]]:
    """SimCLR + COLT's tail score: COLT's train() for 2 epochs x 2 steps (the second epoch's
    batches carry OOD rows, index -1, sup_weight 0.2) vs ltcl's GuideModule (method=colt)."""
    import torch
    import train_simCLR as colt_train

    lr, wd = 0.05, 1e-4
    n_id = 6  # 6 ID images + 2 OOD images in epoch 2 (mixed)
    images = random_images(2 * (n_id + 2), 400)
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
    imgs = (images - mean) / std  # COLT normalises in the transform
    view1, view2 = imgs[: n_id + 2], imgs[n_id + 2 :]
    epochs_rows = [
        [[0, 3, 5, 1], [2, 4]],  # epoch 1: ID only (6 images: a full and a short batch)
        [[4, 6, 1, 0], [7, 3, 5, 2]],  # epoch 2: ID + OOD (6, 7 are OOD picks)
    ]
    official = colt_official_model(0)
    module = colt_ltcl_guide(0.2)
    copy_plain(official, official.fc, module)
    module.sampler.setup(n_id)
    opt = ltcl_sgd(
        [module.backbone, module.projector, *module.extra_trainable_modules()], lr, wd, False
    )
    optimizer = torch.optim.SGD(official.parameters(), lr=lr, weight_decay=wd, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    args = colt_args(sup_weight=0.2, epochs=2)
    shadow = torch.zeros(n_id, dtype=torch.float64)
    tail = torch.zeros(2, n_id, dtype=torch.float64)
    recorded = []
    original = colt_train.nt_xent

    def recording(*a, **k):
        out = original(*a, **k)
        recorded.append(float(out[2]))
        return out

    colt_train.nt_xent = recording
    losses_l = []
    try:
        for epoch, batches in enumerate(epochs_rows, start=1):
            loader = OneEpochLoader()
            for rows_ in batches:
                r = torch.tensor(rows_)
                index = torch.where(r < n_id, r, torch.full_like(r, -1))
                loader.append((torch.stack([view1[r], view2[r]], dim=1), index))
            shadow, tail = colt_train.train(
                loader,
                official,
                optimizer,
                scheduler,
                epoch,
                Log(),
                0,
                0,
                1,
                shadow,
                tail,
                args=args,
            )
            if epoch == 1:  # COLT's epoch 1 is plain SimCLR (no OOD yet): keep its weights
                after_simclr = {k: v.clone() for k, v in official.state_dict().items()}
            module.train()
            for rows_ in batches:
                r = torch.tensor(rows_)
                is_id = r < n_id
                b = id_batch(r[is_id], view1[r[is_id]], view2[r[is_id]])
                if (~is_id).any():
                    o = r[~is_id]
                    b["ood"] = {
                        "index": o,
                        "label": torch.zeros_like(o),
                        "views": [view1[o], view2[o]],
                    }
                opt.zero_grad()
                loss, _ = module.training_loss(b)
                loss.backward()
                opt.step()
                losses_l.append(float(loss))
    finally:
        colt_train.nt_xent = original
    d_id = max(abs(a - b) for a, b in zip(losses_l[:2], recorded[:2], strict=True))
    d_mix = max(abs(a - b) for a, b in zip(losses_l[2:], recorded[2:], strict=True))
    ema = module.sampler.strategy.tail_scores.values
    d_ema = max(max_diff(ema, shadow), max_diff(ema, tail[1]))
    check = colt_ltcl_guide(0.2)
    copy_plain(official, official.fc, check)
    final = {
        k: v
        for k, v in check.state_dict().items()
        if "running" not in k and "num_batches" not in k and "domain_head" not in k
    }
    d_w = max(max_diff(module.state_dict()[k], v) for k, v in final.items())
    # ltcl's SimCLRModule on COLT's epoch 1 (ID only = SimCLR) from the same initial weights.
    from ltcl.methods.simclr import SimCLRModule

    def simclr_module():
        return SimCLRModule(
            backbone={"name": "cifar_resnet18"},
            projector={"hidden_dim": None, "out_dim": 128},
            temperature=0.2,
            channels_last=False,
        ).double()

    start = colt_official_model(0)
    simclr = simclr_module()
    copy_plain(start, start.fc, simclr)
    opt = ltcl_sgd([simclr.backbone, simclr.projector], lr, wd, False)
    simclr.train()
    losses_s = []
    for rows_ in epochs_rows[0]:
        r = torch.tensor(rows_)
        opt.zero_grad()
        loss, _ = simclr.training_loss(id_batch(r, view1[r], view2[r]))
        loss.backward()
        opt.step()
        losses_s.append(float(loss))
    start.load_state_dict(after_simclr)
    check_s = simclr_module()
    copy_plain(start, start.fc, check_s)
    d_s = max(
        max_diff(simclr.state_dict()[k], v)
        for k, v in check_s.state_dict().items()
        if "running" not in k and "num_batches" not in k
    )
    d_sl = max(abs(a - b) for a, b in zip(losses_s, recorded[:2], strict=True))
    simclr_row = measured(
        "all peers",
        "SimCLR training: 2 steps (fp64, batches of 4 and 2 images, one forward over both views)",
        "ltcl.methods.simclr.SimCLRModule.training_loss + SGD (wd on every parameter)",
        "COLT train_simCLR.py train() before any OOD round (plain SimCLR; SDCLR's train() is the "
        "same loop), models/resnet.py resnet18 + models/utils.py proj_head(512, 128)",
        max(d_s, d_sl),
        1e-9,
        evidence=f"loss diff {d_sl:.2g}, weight diff {d_s:.2g}; losses ltcl "
        + ", ".join(f"{v:.5f}" for v in losses_s)
        + " / official "
        + ", ".join(f"{v:.5f}" for v in recorded[:2]),
    )
    what = "GuideModule (method=colt: beta 0, domain_loss supcon, sampler colt_official) "
    return [
        measured(
            "COLT",
            "SimCLR + COLT training: 2 epochs x 2 steps (fp64, batch 4; epoch 2 mixes 2 OOD "
            "images in, sup_weight 0.2): losses and weights",
            what + "training_loss + SGD (wd on every parameter)",
            "train_simCLR.py train(): nt_xent with index -1 for OOD rows, SGD step",
            max(d_id, d_mix, d_w),
            1e-6,
            evidence=f"ID-only steps: loss diff {d_id:.2g}; mixed steps: loss diff {d_mix:.2g} "
            f"(COLT's float32 positive mask in the sup term); final weight diff {d_w:.2g}; losses "
            "ltcl "
            + ", ".join(f"{v:.5f}" for v in losses_l)
            + " / official "
            + ", ".join(f"{v:.5f}" for v in recorded),
        ),
        measured(
            "COLT",
            "tail-score EMA over the 2 epochs (ID images only)",
            "ColtStrategy.observe -> colt_tail_score -> PerSampleEMA(0.97)",
            "train(): shadow / momentum_tail_score (epoch 1 raw, then beta 0.97; OOD rows skipped)",
            d_ema,
            1e-6,
            evidence="ltcl's tail-score softmax is float32 (training is fp32 in both)",
        ),
        simclr_row,
    ]


def _fake_loader(features, batch_size: int, drop_last: bool, offset: int = 0):
    """Yields (inputs, _, idx) as COLT's loaders in sample_ood, the 'inputs' being indices
    that a lookup model turns into fixed embeddings; DistributedSampler(shuffle=False)."""
    import torch
    from torch.utils.data import DataLoader, Dataset, DistributedSampler

    class _Set(Dataset):
        def __len__(self):
            return len(features)

        def __getitem__(self, i):
            return torch.tensor(offset + i), -1, i

    ds = _Set()
    sampler = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=False)
    return DataLoader(
        ds, batch_size=batch_size, sampler=sampler, shuffle=False, drop_last=drop_last
    )


class _Lookup:
    """A 'model' for sample_ood: model.eval() returns itself; model(idx) is a table lookup."""

    def __init__(self, table):
        self.table = table

    def eval(self):
        return self

    def __call__(self, idx):
        return self.table[idx.long()]


def colt_kmeans_and_pick(repo: Path) -> list[dict[str, Any]]:
    import functools

    import numpy as np
    import sklearn
    import torch
    import torch.nn.functional as F
    import train_simCLR as colt_train
    from sklearn.cluster import KMeans

    from ltcl.ood.rounds import SamplerConfig
    from ltcl.ood.strategies import ColtStrategy, sklearn_kmeans

    G = "COLT"
    rows = []
    g = torch.Generator().manual_seed(8)
    centres = torch.randn(12, 16, generator=g)
    n_id, n_pool, bs, k, budget = 600, 1024, 64, 10, 300
    id_raw = centres[torch.randint(12, (n_id,), generator=g)] + 0.6 * torch.randn(
        n_id, 16, generator=g
    )
    pool_raw = centres[torch.randint(12, (n_pool,), generator=g)] + 0.8 * torch.randn(
        n_pool, 16, generator=g
    )
    id_z, pool_z = F.normalize(id_raw, dim=1), F.normalize(pool_raw, dim=1)
    # ---- k-means
    ours = sklearn_kmeans(id_z, k, 10, 300)
    x = id_z.numpy()
    then = KMeans(n_clusters=k, random_state=0, n_init=10).fit(x)
    now = KMeans(n_clusters=k, random_state=0).fit(x)
    same_then = int((ours.pseudo_labels.numpy() != then.labels_).sum())
    d_then = max_diff(ours.centroids, torch.from_numpy(then.cluster_centers_))
    changed = int((now.labels_ != then.labels_).sum())
    rows.append(
        measured(
            G,
            "k-means of the ID embeddings",
            "ltcl.ood.strategies.sklearn_kmeans(z, 10, n_init=10, max_iter=300)",
            "train_simCLR.py sample_ood: Kmeans_sklearn(n_clusters=10, random_state=0) with the "
            "scikit-learn of 2022/23 (default n_init 10)",
            max(d_then, same_then),
            1e-6,
            FIXED,
            f"885da71: scikit-learn KMeans, random_state 0, 10 starts. scikit-learn {sklearn.__version__} "
            f"defaults to n_init 'auto' (1 start): COLT's exact call today gives {changed} of {n_id} "
            "other labels here, so ltcl passes n_init=10 explicitly",
            evidence=f"{n_id} ID embeddings, 16-d: labels equal ({same_then} differ), centres diff {d_then:.2g}",
        )
    )
    # ---- the whole pick and the budgets, through sample_ood itself
    budgets_seen = []
    real_cat = colt_train.torch.cat

    class _TorchProxy:
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def cat(tensors, *a, **kw):
            if (
                isinstance(tensors, list)
                and tensors
                and all(t.dim() == 1 for t in tensors)
                and len(tensors) == k
            ):
                budgets_seen.append([len(t) for t in tensors])
            return real_cat(tensors, *a, **kw)

    colt_train.Kmeans_sklearn = functools.partial(KMeans, n_init=10)  # the 2022/23 default
    colt_train.torch = _TorchProxy()
    worst_pick, worst_budget, trials = 0, 0, 20
    picks_equal = 0
    try:
        for trial in range(trials):
            tg = torch.Generator().manual_seed(100 + trial)
            scale = 10 ** float(torch.rand(1, generator=tg) * 3 - 1)
            momentum = (torch.rand(n_id, generator=tg) * scale).float()
            args = colt_args(budget=budget, batch_size=bs, k_means_clusters=k)
            table = torch.cat([id_raw, pool_raw])  # ID rows, then the pool (offset n_id)
            sample_idx = colt_train.sample_ood(
                _fake_loader(id_raw, bs, False),
                _Lookup(table),
                0,
                1,
                _fake_loader(pool_raw, bs, True, offset=n_id),
                momentum,
                args=args,
            )
            cfg = SamplerConfig(
                strategy="colt",
                budget=budget,
                num_clusters=k,
                kmeans="sklearn",
                kmeans_inits=10,
                kmeans_iterations=300,
                budget_remainder="last",
                tail_score="colt",
                batch_mode="mix",
            )
            strategy = ColtStrategy(cfg)
            strategy.setup(n_id)
            strategy.tail_scores.update(torch.arange(n_id), momentum)
            sel = strategy.select(id_z, pool_z, seed=0)
            worst_budget = max(
                worst_budget, int(np.abs(np.array(sel.budgets) - np.array(budgets_seen[-1])).max())
            )
            same = np.array_equal(sel.local, sample_idx.numpy())
            picks_equal += same
            if not same:
                worst_pick = max(
                    worst_pick, len(set(sel.local.tolist()) ^ set(sample_idx.tolist()))
                )
    finally:
        colt_train.torch = torch
    rows.append(
        measured(
            G,
            "OOD budgets per cluster",
            "ltcl.ood.budgets.softmax_tail_budgets(cluster scores, K, 1.0, 'last') in ColtStrategy",
            "sample_ood: softmax(-zscore(mean tail score)/T) * budget, int64, remainder to the last",
            worst_budget,
            0,
            FIXED,
            "885da71: COLT's rounding (truncate, the whole remainder to the last cluster) as "
            "budget_remainder=last",
            f"{trials} rounds, tail scores spanning 0.1-100 (float32, as COLT's)",
        )
    )
    rows.append(
        measured(
            G,
            "the whole pick of a round (k-means, budgets, nearest untaken OOD per cluster)",
            "ltcl.ood.strategies.ColtStrategy.select(id_z, candidate_z)",
            "train_simCLR.py sample_ood with fake loaders (inputs, _, idx) and a lookup model, "
            "world size 1, Kmeans_sklearn with n_init 10",
            worst_pick,
            0,
            FIXED,
            "885da71: the colt_official sampler (sklearn k-means, COLT's budgets, clusters pick in "
            "index order, nearest by cosine)",
            f"{picks_equal}/{trials} rounds give identical ordered pick lists ({n_id} ID, {n_pool} OOD "
            f"candidates, K {budget})",
        )
    )
    n300 = 300000
    rows.append(
        row(
            G,
            "OOD candidates of a round",
            "every pool image (ood.candidates_per_round: null)",
            f"sample_loader_test_trans has drop_last=True: the last {n300 % 512} of the 300K "
            "Random Images (300000 mod 512) are never embedded nor picked",
            HARMLESS,
            f"{n300 % 512} of 300,000 candidates (0.16%) missing in COLT",
        )
    )
    return rows


def colt_batches(repo: Path) -> list[dict[str, Any]]:
    """An epoch of mixed batches: ltcl's LongTailDataModule(batch_mode=mix) against the loader
    COLT's main() builds after a round (ConcatDataset + DistributedSampler(shuffle=True))."""
    import numpy as np
    import torch
    from hydra.utils import instantiate
    from torch.utils.data import ConcatDataset, DataLoader, Dataset, DistributedSampler

    from ltcl.data.datamodule import split_mixed_batch

    cfg = compose_ltcl(
        ["data=embedded", "ood=embedded", "method=colt", "data.global_batch_size=64"]
    )
    dm = instantiate(cfg["data"])
    pool = instantiate(cfg["ood"])
    dm.attach_ood_pool(pool)
    dm.setup("fit")
    pool.setup("fit")
    n_id = len(dm.train_set)
    k = min(100, len(pool.candidates(0)) if hasattr(pool, "candidates") else 100)
    picked = np.arange(k)
    dm.set_ood_subset(picked, np.zeros(k, dtype=np.int64), "mix")
    loader = dm.train_dataloader()
    seen_id, seen_ood, steps, splits_ok = [], [], 0, True
    for item in loader:
        batch = item[0] if isinstance(item, tuple) else item
        raw = batch["mixed"]
        parts = split_mixed_batch(raw, n_id)
        idx = raw["index"]
        splits_ok &= bool((parts["id"]["index"] < n_id).all())
        if "ood" in parts:
            splits_ok &= bool((parts["ood"]["index"] >= n_id).all())
        seen_id += idx[idx < n_id].tolist()
        seen_ood += idx[idx >= n_id].tolist()
        steps += 1
    bs = dm.global_batch_size
    # COLT's loader after a round (train_simCLR.py main()), on index-only datasets.

    class _Idx(Dataset):
        def __init__(self, n, offset):
            self.n, self.offset = n, offset

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return self.offset + i

    concat = ConcatDataset([_Idx(n_id, 0), _Idx(k, n_id)])
    sampler = DistributedSampler(concat, num_replicas=1, rank=0, shuffle=True)
    sampler.set_epoch(1)
    official = [b for b in DataLoader(concat, batch_size=bs, sampler=sampler)]
    flat = torch.cat(official).tolist()
    once_o = len(flat) == len(set(flat)) == n_id + k
    once_l = len(seen_id) == len(set(seen_id)) and len(seen_ood) == len(set(seen_ood))
    ok = splits_ok and once_l and steps == (n_id + k) // bs
    return [
        row(
            "COLT",
            "batches of an epoch after a round (ID and picks mixed)",
            f"LongTailDataModule.set_ood_subset(..., 'mix'): one shuffled order over ID + picks, "
            f"{steps} steps of {bs} = (N_id + K) // B (N_id {n_id}, K {k}); each image at most "
            f"once, {len(seen_ood)}/{k} picks and {len(seen_id)}/{n_id} ID images seen; "
            "split_mixed_batch splits rows by index",
            f"ConcatDataset([ID, Subset(picks)]) + DistributedSampler(shuffle=True), no drop_last: "
            f"{len(official)} steps, the last of {len(official[-1])}, every image exactly once"
            + ("" if once_o else " (NOT observed)"),
            HARMLESS if ok else COULD_CHANGE,
            f"ltcl drops the last partial batch: {n_id + k - steps * bs} random images (ID or "
            "picks) are skipped that epoch, a different set each epoch"
            if ok
            else "the mixed loader does not behave as described",
            evidence="embedded data (no download), batch 64; ltcl's 'ood' part is absent from a "
            "batch without picks, as COLT's sup term needs index -1 in the batch",
        )
    ]


def colt_schedule(repo: Path) -> list[dict[str, Any]]:
    import types

    import numpy as np
    import torch
    import train_simCLR as colt_train

    rows = []
    for name, n_id in (("CIFAR-10-LT", 11165), ("CIFAR-100-LT", 9754)):
        epochs, warmup, budget, bs = 2000, 100, 10000, 512
        len_id = math.ceil(n_id / bs)
        len_mix = math.ceil((n_id + budget) / bs)
        iters_o = warmup * len_id + (epochs - warmup) * (len_id + budget // bs + 1)
        actual_o = warmup * len_id + (epochs - warmup) * len_mix
        warm_o = 10 * len_id
        module = colt_ltcl_guide(0.0)
        module.optimizer_factory = lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9)
        module.hparams.global_batch_size = bs
        dm = types.SimpleNamespace(
            ood_pool=object(),
            setup=lambda stage=None: None,
            batch_size_per_device=lambda bs=bs: bs,
            train_set=range(n_id),
        )
        module._trainer = types.SimpleNamespace(
            estimated_stepping_batches=epochs * (n_id // bs),
            max_epochs=epochs,
            world_size=1,
            datamodule=dm,
        )
        conf = module.configure_optimizers()
        lam = conf["lr_scheduler"]["scheduler"].lr_lambdas[0]
        steps_l, id_steps = module.ood_steps_per_epoch(epochs)
        total_l = sum(steps_l)
        # COLT steps the scheduler after the optimiser: iteration i runs at f(i).
        lr_o = np.array(
            [
                colt_train.cosine_annealing(i, iters_o, 1, 1e-6 / 0.5, warm_o)
                for i in range(actual_o)
            ]
        )
        lr_l = np.array([lam(i) for i in range(total_l)])
        # Compare per epoch (its first step), the two runs having different steps per epoch.
        start_o = np.cumsum([0] + [len_id] * warmup + [len_mix] * (epochs - warmup))[:-1]
        start_l = np.cumsum([0] + steps_l)[:-1]
        d = float(np.abs(lr_o[start_o] - lr_l[start_l]).max())
        rows.append(
            row(
                "COLT",
                f"LR schedule with the mixed epochs ({name}, 2000 epochs, first round at 100)",
                f"total = sum of actual steps = {total_l:,} ({id_steps}/epoch ID-only, "
                f"{steps_l[-1]}/epoch mixed, drop_last); warm-up 10 x {id_steps} = {10 * id_steps}; "
                f"ends at {lr_l[-1]:.2g} x peak",
                f"training_iters = warmup*len + (epochs-warmup)*(len + budget//bs + 1) = {iters_o:,} "
                f"but the loader runs {actual_o:,} steps ({len_id}/epoch, then ceil((N+K)/B) = "
                f"{len_mix}); warm-up 10 x {len_id} = {warm_o}; ends at {lr_o[-1]:.2g} x peak",
                HARMLESS,
                (
                    "the official formula counts one step more per mixed epoch than its loader runs "
                    f"({len_id + budget // bs + 1} vs {len_mix}), so its cosine stops short of its "
                    "minimum; "
                    if iters_o != actual_o
                    else ""
                )
                + "per-epoch LR factors differ by at most "
                f"{d:.3f} (of the peak) through the one-step drop_last difference"
                + ("" if iters_o == actual_o else " and that overcount"),
                d,
                "LR factor at the start of every epoch",
            )
        )
    return rows


def colt_presets(repo: Path) -> list[dict[str, Any]]:
    text10 = (repo / "cmds/shell_scrips/cifar-10-LT_extra.sh").read_text()
    text100 = (repo / "cmds/shell_scrips/cifar-100-LT_extra.sh").read_text()
    train_src = (repo / "train_simCLR.py").read_text()
    off = {
        k: shell_default(text10, k)
        for k in (
            "pretrain_lr",
            "pretrain_temp",
            "batch_size",
            "budget",
            "sample_interval",
            "warmup",
            "k_largest_logits",
            "k_means_clusters",
            "sup_weight",
            "cluster_temperature",
        )
    }
    sup100 = shell_default(text100, "sup_weight")
    beta = "parser.add_argument('--beta', type=float, default=0.97)" in train_src
    cfg = compose_ltcl(
        ["method=colt", "model=cifar_resnet18", "data=cifar10_lt", "ood=tinyimagenet"]
    )
    m = cfg["method"]
    s = m["sampler"]
    checks = {
        "lr": float(off["pretrain_lr"]) == cfg["optim"]["schedule"]["base_lr"],
        "temperature": float(off["pretrain_temp"]) == m["temperature"],
        "batch": int(off["batch_size"]) == cfg["data"]["global_batch_size"],
        "budget": int(off["budget"]) == s["budget"],
        "interval": int(off["sample_interval"]) == s["interval"],
        "warmup": int(off["warmup"]) == s["warmup_epochs"],
        "topk": int(off["k_largest_logits"]) == s["colt_topk"],
        "clusters": int(off["k_means_clusters"]) == s["num_clusters"],
        "sup_weight": float(off["sup_weight"]) == m["lambda_dd"],
        "cluster_T": float(off["cluster_temperature"]) == s["colt_temperature"],
        "ema": beta and s["colt_ema"] == 0.97,
        "projector": cfg["method"]["projector"].get("num_layers", 2) == 2,
    }
    bad = [k for k, v in checks.items() if not v]
    dataset_handled = (
        "args.dataset == 'cifar'" in train_src or 'args.dataset == "cifar"' in train_src
    )
    rows = [
        row(
            "COLT",
            "preset (method=colt, data=cifar10_lt)",
            f"lr {cfg['optim']['schedule']['base_lr']}, batch {cfg['data']['global_batch_size']}, "
            f"temperature {m['temperature']}, budget {s['budget']}, round at {s['warmup_epochs']} "
            f"then every {s['interval']}, top-k {s['colt_topk']}, {s['num_clusters']} clusters, "
            f"cluster T {s['colt_temperature']}, EMA {s['colt_ema']}, lambda_dd {m['lambda_dd']}, "
            f"beta {m['beta']}, 2-layer projector",
            f"cmds/shell_scrips/cifar-10-LT_extra.sh: lr {off['pretrain_lr']}, batch "
            f"{off['batch_size']}, temperature {off['pretrain_temp']}, budget {off['budget']}, warmup "
            f"{off['warmup']}, interval {off['sample_interval']}, k_largest_logits "
            f"{off['k_largest_logits']}, k_means_clusters {off['k_means_clusters']}, "
            f"cluster_temperature {off['cluster_temperature']}, beta 0.97, sup_weight "
            f"{off['sup_weight']} (CIFAR-100 script: {sup100})",
            FIXED if not bad else COULD_CHANGE,
            "885da71: method/sampler=colt_official (sklearn k-means, COLT's budgets and tail "
            "score, picks mixed into the ID set)"
            if not bad
            else f"differs: {bad}",
        ),
        row(
            "COLT",
            "OOD pool",
            "ood=tinyimagenet (Tiny ImageNet 32x32, 100,000 images) here; ood=random300k reads "
            "COLT's file",
            "300K Random Images (300K_random_images.npy)",
            COULD_CHANGE,
            "another OOD set gives other picks and other results; ood=random300k restores "
            "COLT's pool where the file is available",
        ),
    ]
    if not dataset_handled:
        rows.append(
            row(
                "COLT",
                "CIFAR-10 with COLT's own script",
                "runs (method=colt data=cifar10_lt)",
                "cmds/shell_scrips/cifar-10-LT_extra.sh passes --dataset cifar, which "
                "train_simCLR.py does not handle (only cifar100, imagenet-100, places365: "
                "'imagenet' is then undefined), so the published CIFAR-10 command cannot run",
                HARMLESS,
                "ltcl runs COLT's CIFAR code path (as for cifar100) with the CIFAR-10 script's "
                "settings; nothing to match",
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

PARTS = {"sdclr": ("SDCLR", part_sdclr), "bcl": ("BCL", part_bcl), "colt": ("COLT", part_colt)}


def cpu_seconds() -> float:
    """User + system CPU time of the finished part subprocesses."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_part(name: str, out: Path) -> None:
    import torch

    repo_name, fn = PARTS[name]
    repo = resolve_repos()[repo_name]
    torch.set_num_threads(int(os.environ.get("PARITY_THREADS", "2")))
    import_official(repo)
    import warnings

    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    rows = fn(repo)
    for r in rows:
        check_row(r)
    out.write_text(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for parity.md/json")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/peer_parity.md")
    parser.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--part-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--render", action="store_true", help="rewrite the Markdown from parity.json only"
    )
    args = parser.parse_args(argv)
    if args.part:
        run_part(args.part, args.part_out)
        return 0
    if args.render:
        record = json.loads((args.out / "parity.json").read_text())
        path = write_results(record["rows"], record["meta"], args.out)
        if not args.no_docs:
            (ROOT / "docs" / "peer_parity.md").write_text(docs_page(record["rows"], record["meta"]))
        print(path.read_text())
        return 0
    repos = resolve_repos()
    import tempfile

    import numpy
    import sklearn
    import torch

    rows: list[dict[str, Any]] = []
    seconds = {}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("WANDB_MODE", "offline")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.parts:
            part_out = Path(tmp) / f"{name}.json"
            print(f"[peer_parity] {name} ...", flush=True)
            proc = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--part",
                    name,
                    "--part-out",
                    str(part_out),
                ],
                env=env,
                cwd=str(ROOT),
            )
            if proc.returncode != 0:
                print(f"[peer_parity] part {name} failed (exit {proc.returncode})", file=sys.stderr)
                return proc.returncode
            result = json.loads(part_out.read_text())
            rows += result["rows"]
            seconds[name] = round(result["seconds"], 1)
            print(
                f"[peer_parity] {name}: {len(result['rows'])} rows, {seconds[name]} s", flush=True
            )
    meta = {
        "command": COMMAND,
        "repos": {
            name: {"commit": repo_commit(path), "url": REPOS[name][2], "path": str(path)}
            for name, path in repos.items()
        },
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "scikit-learn": sklearn.__version__,
            "numpy": numpy.__version__,
        },
        "seconds": seconds,
        "cpu_seconds": round(cpu_seconds(), 1),
    }
    path = write_results(rows, meta, args.out)
    if not args.no_docs:
        (ROOT / "docs" / "peer_parity.md").write_text(docs_page(rows, meta))
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
