"""SDCLR's self-competitor: a weight-sharing, magnitude-pruned copy of a backbone with its own
BatchNorm layers (Jiang et al., ICML 2021). Plain PyTorch.

Each epoch a *global* magnitude mask keeps the largest ``1 - prune_percent`` of all convolution
weights of the backbone together (not per layer). The pruned branch runs the same module with
``weight * mask`` in every convolution (gradients reach the shared dense weights through the
mask) and with BatchNorm parameters and statistics of its own, so that the sparse branch's
activation statistics never mix with the dense branch's.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.func import functional_call

from ltcl.errors import ConfigError

_NORMS = (nn.modules.batchnorm._BatchNorm,)


def check_prune_percent(prune_percent: float) -> float:
    if (
        isinstance(prune_percent, bool)
        or not isinstance(prune_percent, int | float)
        or not (0.0 <= float(prune_percent) < 1.0)
    ):
        raise ConfigError(
            f"method.prune_percent must be in [0, 1) (the share of convolution weights the "
            f"pruned branch drops; SDCLR: 0.9 on CIFAR, 0.3 at 224 px), got {prune_percent!r}"
        )
    return float(prune_percent)


def prunable_weights(module: nn.Module) -> dict[str, torch.Tensor]:
    """Name -> weight of every convolution (what SDCLR prunes)."""
    return {
        f"{name}.weight" if name else "weight": m.weight
        for name, m in module.named_modules()
        if isinstance(m, nn.Conv2d)
    }


@torch.no_grad()
def global_magnitude_masks(
    weights: dict[str, torch.Tensor], prune_percent: float
) -> dict[str, torch.Tensor]:
    """Masks (bool, same shapes) of SDCLR's ``Mask.magnitudePruning``: the threshold is the
    ``ceil(p x total)``-th smallest |w| of all weights together, and every weight with
    ``|w| >= threshold`` is kept, so ties at the threshold are kept (at most ``ceil(p x
    total)`` weights are pruned)."""
    prune_percent = check_prune_percent(prune_percent)
    flat = torch.cat([w.detach().abs().flatten().float() for w in weights.values()])
    pruned = math.ceil(prune_percent * flat.numel())
    threshold = torch.sort(flat).values[min(pruned, flat.numel() - 1)]
    return {name: w.detach().abs().float() >= threshold for name, w in weights.items()}


def _norm_key(name: str) -> str:
    return name.replace(".", "__")  # ModuleDict keys cannot hold dots


def copy_norms(module: nn.Module) -> tuple[list[str], nn.ModuleDict]:
    """The names of `module`'s BatchNorm layers and copies of them (initialised alike)."""
    names = [n for n, m in module.named_modules() if isinstance(m, _NORMS)]
    return names, nn.ModuleDict(
        {_norm_key(n): copy.deepcopy(module.get_submodule(n)) for n in names}
    )


def norm_replacements(names: list[str], norms: nn.ModuleDict) -> dict[str, torch.Tensor]:
    """``functional_call`` replacements that run a module with the copied norms' parameters
    and running statistics instead of its own."""
    replaced: dict[str, torch.Tensor] = {}
    for name in names:
        own = norms[_norm_key(name)]
        for key, tensor in [*own.named_parameters(), *own.named_buffers()]:
            replaced[f"{name}.{key}"] = tensor
    return replaced


class OwnNorms(nn.Module):
    """Runs a shared module (SDCLR's projector) with BatchNorm layers of its own: the pruned
    branch's activations never touch the dense branch's BN parameters or statistics
    (SDCLR's ``proj_head`` with ``batch_norm_multiple``, one BN per branch)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.norm_names, self.norms = copy_norms(module)

    def forward(self, module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return functional_call(module, norm_replacements(self.norm_names, self.norms), (inputs,))


class PrunedBranch(nn.Module):
    """The self-competitor of ``backbone``: shared (masked) convolutions, its own BatchNorms.

    ``masks`` are buffers (saved in checkpoints; :meth:`update_masks` recomputes them from the
    dense weights, identically on every process since DDP keeps the weights identical).
    """

    def __init__(self, backbone: nn.Module, prune_percent: float) -> None:
        super().__init__()
        self.prune_percent = check_prune_percent(prune_percent)
        self.norm_names, self.norms = copy_norms(backbone)  # own BN layers
        self.weight_names = list(prunable_weights(backbone))
        for i, name in enumerate(self.weight_names):
            w = backbone.get_parameter(name)
            self.register_buffer(f"mask_{i}", torch.ones_like(w, dtype=torch.bool))

    def masks(self) -> dict[str, torch.Tensor]:
        return {n: getattr(self, f"mask_{i}") for i, n in enumerate(self.weight_names)}

    @torch.no_grad()
    def update_masks(self, backbone: nn.Module) -> None:
        weights = {n: backbone.get_parameter(n) for n in self.weight_names}
        for i, mask in enumerate(global_magnitude_masks(weights, self.prune_percent).values()):
            getattr(self, f"mask_{i}").copy_(mask)

    def forward(self, backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
        replaced: dict[str, torch.Tensor] = {}
        for name, mask in self.masks().items():
            replaced[name] = backbone.get_parameter(name) * mask
        replaced.update(norm_replacements(self.norm_names, self.norms))
        return functional_call(backbone, replaced, (images,))
