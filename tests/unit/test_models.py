"""Backbones and the projection head: shapes, the CIFAR stem, feature_dim, head layout, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ltcl.errors import ConfigError
from ltcl.models.backbones import build_backbone, cifar_resnet18, resnet50, small_convnet
from ltcl.models.projector import Projector

# (name, input size, feature_dim); resnet50 at 64 px keeps the test quick.
CASES = [
    ("cifar_resnet18", 32, 512),
    ("resnet18", 64, 512),
    ("resnet50", 64, 2048),
    ("small_convnet", 32, 256),
]


@pytest.mark.parametrize(("name", "size", "dim"), CASES)
def test_backbone_output_shape_and_feature_dim(name, size, dim):
    model = build_backbone(name).eval()
    assert model.feature_dim == dim
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, dim)


@pytest.mark.parametrize(("name", "size", "dim"), CASES)
def test_backbone_accepts_channels_last(name, size, dim):
    torch.manual_seed(0)
    model = build_backbone(name).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(
            x.contiguous(memory_format=torch.channels_last)
        )
    assert out.shape == (2, dim)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_cifar_resnet18_stem():
    model = cifar_resnet18()
    conv = model.conv1
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
    assert conv.bias is None
    assert isinstance(model.maxpool, nn.Identity)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert isinstance(model.fc, nn.Identity)
    # Stride 1 and no max-pool: layer1 sees the full 32x32 resolution.
    seen = []
    model.layer1.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    model.eval()(torch.randn(1, 3, 32, 32))
    assert seen[0][-2:] == (32, 32)


def test_imagenet_resnets_keep_their_stem():
    model = resnet50()
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    assert isinstance(model.maxpool, nn.MaxPool2d) and isinstance(model.fc, nn.Identity)
    assert build_backbone("resnet18").conv1.kernel_size == (7, 7)


def test_small_convnet_width_and_gradients():
    model = small_convnet(width=8)
    assert model.feature_dim == 64
    out = model(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 64)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ConfigError, match="width"):
        small_convnet(width=0)


def test_build_backbone_passes_options_and_rejects_unknown():
    assert build_backbone("small_convnet", width=4).feature_dim == 32
    with pytest.raises(ConfigError, match="cifar_resnet18.*resnet18.*resnet50.*small_convnet"):
        build_backbone("vit_b16")
    with pytest.raises(ConfigError, match="small_convnet"):
        build_backbone("small_convnet", depth=3)


def test_projector_layout():
    head = Projector(512)
    kinds = [type(m) for m in head]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d]
    first, last = head[0], head[3]
    assert (first.in_features, first.out_features) == (512, 512) and first.bias is not None
    assert (last.in_features, last.out_features) == (512, 128) and last.bias is None
    assert head[4].num_features == 128
    assert (head.in_dim, head.hidden_dim, head.out_dim) == (512, 512, 128)


def test_projector_output_is_unnormalised():
    torch.manual_seed(0)
    head = Projector(16, hidden_dim=32, out_dim=8)
    assert head[0].out_features == 32 and head[3].in_features == 32
    out = head(torch.randn(10, 16) * 5)
    assert out.shape == (10, 8)
    assert not torch.allclose(out.norm(dim=1), torch.ones(10))
    with pytest.raises(ConfigError, match="out_dim"):
        Projector(16, out_dim=0)


def test_backbone_and_projector_compose_under_train_mode():
    backbone = build_backbone("small_convnet", width=8)
    head = Projector(backbone.feature_dim)
    z = nn.functional.normalize(head(backbone(torch.randn(6, 3, 32, 32))), dim=1)
    assert z.shape == (6, 128)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(6))
