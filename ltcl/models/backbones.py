"""Backbones: image (B, 3, H, W) -> feature vector (B, feature_dim), classifier removed.

Every backbone carries ``feature_dim`` so that heads (projector, domain head, linear probe) can be
sized without a dummy forward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision
from torch import nn

from ltcl.errors import ConfigError


def _headless(model: torchvision.models.ResNet, feature_dim: int) -> torchvision.models.ResNet:
    model.fc = nn.Identity()  # forward now ends at the flattened global average pool
    model.feature_dim = feature_dim
    return model


def cifar_resnet18(zero_init_residual: bool = False) -> nn.Module:
    """ResNet-18 for 32 px images (SDCLR/COLT/BCL): 3x3 stride-1 stem without bias and no
    max-pool, so layer1 runs at 32x32 instead of 8x8; output (B, 512).

    Built from torchvision's ResNet-18 so the residual blocks are the well-tested ones.
    """
    model = torchvision.models.resnet18(weights=None, zero_init_residual=zero_init_residual)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    # Same initialisation as torchvision gives its own convolutions.
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return _headless(model, 512)


class CifarResNet(nn.Module):
    """A CIFAR ResNet (3x3 stride-1 stem, no max-pool) of any base width and stage depths,
    from torchvision's BasicBlock: (B, 3, 32, 32) -> (B, 8 * width).

    width 64 with depths (2, 2, 2, 2) is the ResNet-18 shape; width 16 costs about 1/16 of its
    compute, which brings a ResNet-18-shaped network within reach of a 2-core CPU
    (``model=cifar_resnet18_w16``; benchmarks/throughput/cpu_tier_throughput.py measures the candidates).
    """

    def __init__(self, width: int = 16, depths: tuple[int, ...] = (2, 2, 2, 2)) -> None:
        super().__init__()
        from torchvision.models.resnet import BasicBlock

        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ConfigError(f"model.backbone.width must be a positive integer, got {width!r}")
        depths = tuple(depths)
        if not depths or any(not isinstance(d, int) or d < 1 for d in depths):
            raise ConfigError(f"cifar_resnet depths must be positive integers; got {depths!r}.")
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        blocks: list[nn.Module] = []
        inplanes = width
        for stage, depth in enumerate(depths):
            planes, stride = width * 2**stage, 1 if stage == 0 else 2
            for i in range(depth):
                downsample = None
                if i == 0 and (stride != 1 or inplanes != planes):
                    downsample = nn.Sequential(
                        nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                    )
                blocks.append(BasicBlock(inplanes, planes, stride if i == 0 else 1, downsample))
                inplanes = planes
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = inplanes
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.blocks(self.stem(x)))


def cifar_resnet(width: int = 16, depths: tuple[int, ...] = (2, 2, 2, 2)) -> nn.Module:
    """A CIFAR ResNet of reduced width or depth (see :class:`CifarResNet`)."""
    return CifarResNet(width, tuple(depths))


def resnet18(zero_init_residual: bool = False) -> nn.Module:
    """ResNet-18 with the ImageNet stem (7x7 stride 2 + max-pool), for 224 px images; (B, 512)."""
    model = torchvision.models.resnet18(weights=None, zero_init_residual=zero_init_residual)
    return _headless(model, 512)


def resnet50(zero_init_residual: bool = False) -> nn.Module:
    """ResNet-50 for 224 px images (COLT/SDCLR on ImageNet-100-LT and Places-LT); (B, 2048)."""
    model = torchvision.models.resnet50(weights=None, zero_init_residual=zero_init_residual)
    return _headless(model, 2048)


class SmallConvNet(nn.Module):
    """Four conv-BN-ReLU stages (width, 2w, 4w, 8w), each halving the resolution (32 px -> 2 px),
    then global average pooling. Meant for CPU runs and tests, where a ResNet-18 is far too slow;
    it is not a model for reported results.

    Every stage, the first included, has stride 2: at width 32 and 32 px this trains at about
    4,000 img/s (forward + backward + SGD, batch 256) on 2 CPU cores; with a stride-1 first stage
    it managed about 1,000.
    """

    NORMS = ("batch", "group", "none")

    def __init__(self, width: int = 32, norm: str = "batch") -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ConfigError(f"model.backbone.width must be a positive integer, got {width!r}")
        if norm not in self.NORMS:
            raise ConfigError(f"small_convnet norm must be one of {self.NORMS}; got {norm!r}.")
        layers: list[nn.Module] = []
        in_ch = 3
        for mult in (1, 2, 4, 8):
            out_ch = width * mult
            # norm="group"/"none": per-sample computation, so that a batch split over processes
            # computes exactly what one process computes (the DDP equivalence tests).
            if norm == "batch":
                norm_layer: nn.Module = nn.BatchNorm2d(out_ch)
            elif norm == "group":
                norm_layer = nn.GroupNorm(min(8, out_ch), out_ch)
            else:
                norm_layer = nn.Identity()
            layers += [
                nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=2, padding=1, bias=norm == "none"),
                norm_layer,
                nn.ReLU(inplace=True),
            ]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = 8 * width
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)


def small_convnet(width: int = 32, norm: str = "batch") -> nn.Module:
    """A small, fast backbone for CPU runs and tests; feature_dim = 8 * width."""
    return SmallConvNet(width, norm)


_BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "cifar_resnet": cifar_resnet,
    "cifar_resnet18": cifar_resnet18,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "small_convnet": small_convnet,
}


def build_backbone(name: str, **kwargs) -> nn.Module:
    """Backbone by config name; keyword arguments go to its builder."""
    if name not in _BACKBONES:
        raise ConfigError(f"Unknown backbone {name!r}; known backbones: {sorted(_BACKBONES)}.")
    try:
        return _BACKBONES[name](**kwargs)
    except TypeError as err:  # an option that this builder does not take
        raise ConfigError(f"Bad options {kwargs} for backbone {name!r}: {err}.") from None
