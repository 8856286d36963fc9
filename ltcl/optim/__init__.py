"""Optimisation pieces shared by every method: parameter groups, LR scaling, LARS, warm-up + cosine.

Plain PyTorch; the LightningModule only wires them together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from ltcl.errors import ConfigError

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def parameter_groups(
    modules: Iterable[nn.Module], weight_decay: float, exclude_bias_and_norm: bool = True
) -> list[dict]:
    """Two groups: decayed weights, and biases + normalisation parameters without decay.

    Decaying BN scales and biases hurts contrastive training (SimCLR, MoCo v3, DINO all
    exclude them); LARS also skips its trust ratio for the second group.
    """
    decay, no_decay = [], []
    for module in modules:
        for sub in module.modules():
            for name, param in sub.named_parameters(recurse=False):
                if not param.requires_grad:
                    continue
                skip = isinstance(sub, _NORM_TYPES) or name == "bias" or param.ndim <= 1
                (no_decay if exclude_bias_and_norm and skip else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "lars_exclude": True})
    return groups


def scaled_learning_rate(
    base_lr: float, global_batch_size: int, reference_batch_size: int, rule: str
) -> float:
    """The learning rate for `global_batch_size` given `base_lr` at `reference_batch_size`.

    linear: lr * B / B_ref (SimCLR, MoCo v3, DINO); sqrt: lr * sqrt(B / B_ref); none: lr.
    """
    ratio = global_batch_size / reference_batch_size
    if rule == "linear":
        return base_lr * ratio
    if rule == "sqrt":
        return base_lr * math.sqrt(ratio)
    if rule == "none":
        return base_lr
    raise ConfigError(f"unknown optim.schedule.scaling '{rule}': use one of linear, sqrt, none")


def warmup_cosine_factor(
    step: int, total_steps: int, warmup_steps: int, final_ratio: float
) -> float:
    """Multiplier of the peak LR: linear warm-up from ~0, then cosine down to `final_ratio`."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (You et al. 2017).

    Groups flagged `lars_exclude` (biases, norms) use plain SGD, as in SimCLR and MoCo v3.
    """

    def __init__(
        self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.02
    ):
        super().__init__(
            params,
            dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, lars_exclude=False),
        )

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.add(p, alpha=group["weight_decay"])
                if not group["lars_exclude"]:
                    w_norm, g_norm = p.norm(), grad.norm()
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0),
                        group["eta"] * w_norm / g_norm,
                        torch.ones_like(w_norm),
                    )
                    grad = grad.mul(trust)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = grad.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss
