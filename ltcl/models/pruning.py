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
    """Masks (bool, same shapes) keeping the weights whose magnitude is above the global
    ``prune_percent`` quantile of all |w| together; exactly ``round(p x total)`` are pruned
    (ties broken by position, so the count never drifts)."""
    prune_percent = check_prune_percent(prune_percent)
    flat = torch.cat([w.detach().abs().flatten().float() for w in weights.values()])
    pruned = int(round(prune_percent * flat.numel()))
    keep = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
    if pruned:
        order = torch.argsort(flat, stable=True)
        keep[order[:pruned]] = False
    masks, start = {}, 0
    for name, w in weights.items():
        masks[name] = keep[start : start + w.numel()].view_as(w)
        start += w.numel()
    return masks


class PrunedBranch(nn.Module):
    """The self-competitor of ``backbone``: shared (masked) convolutions, its own BatchNorms.

    ``masks`` are buffers (saved in checkpoints; :meth:`update_masks` recomputes them from the
    dense weights, identically on every process since DDP keeps the weights identical).
    """

    def __init__(self, backbone: nn.Module, prune_percent: float) -> None:
        super().__init__()
        self.prune_percent = check_prune_percent(prune_percent)
        self.norm_names = [n for n, m in backbone.named_modules() if isinstance(m, _NORMS)]
        # Own BN layers, initialised like the dense ones (ModuleDict keys cannot hold dots).
        self.norms = nn.ModuleDict(
            {
                n.replace(".", "__"): copy.deepcopy(backbone.get_submodule(n))
                for n in self.norm_names
            }
        )
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
        for name in self.norm_names:
            own = self.norms[name.replace(".", "__")]
            for key, tensor in [*own.named_parameters(), *own.named_buffers()]:
                replaced[f"{name}.{key}"] = tensor
        return functional_call(backbone, replaced, (images,))
