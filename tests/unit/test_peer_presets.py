"""Each peer's preset equals its official code's setting, key by key (SDCLR: VITA-Group/SDCLR
cmds/shell_scrips/cifar-10-LT.sh with --prune_dual_bn and train_simCLR.py; BCL:
MediaBrain-SJTU/BCL README commands and train.py / train_sdclr.py; COLT:
JianhongBai/COLT cmds/shell_scrips/cifar-10-LT_extra.sh --COLT True and train_simCLR.py), and
the pieces that make them so: the 3-layer projector with a BatchNorm set per branch, the
method's own weight decay, COLT's scikit-learn k-means and its mixed ID + OOD batches."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch import Callback
from omegaconf import OmegaConf

from ltcl.data.datamodule import split_mixed_batch
from ltcl.data.embedded import sample_photo_crops
from ltcl.data.ood_pool import OODPoolDataModule
from ltcl.errors import ConfigError
from ltcl.models.projector import Projector
from ltcl.ood.rounds import SamplerConfig
from ltcl.ood.strategies import sklearn_kmeans
from tests.helpers import compose_train
from tests.unit.test_datamodule import make_dm

# The optimiser every peer's official CIFAR command uses (SGD, momentum 0.9, lr 0.5 at batch
# 512, 10 warm-up epochs, cosine), and each peer's own keys.
COMMON = {
    "optim.optimizer._target_": "torch.optim.SGD",
    "optim.optimizer.momentum": 0.9,
    "optim.schedule.base_lr": 0.5,
    "optim.schedule.reference_batch_size": 512,
    "optim.schedule.warmup_epochs": 10,
    "method.temperature": 0.2,
    "method.projector.out_dim": 128,
    "method.projector.hidden_dim": None,  # = the backbone's feature dim (512 on a ResNet-18)
}
SDCLR = {
    "optim.schedule.weight_decay": 1.0e-4,
    "method.prune_percent": 0.9,
    "method.projector_layers": 3,  # proj_head(ch, 128), twoLayerProj=False, with --prune_dual_bn
    "method.pruned_projector_norms": "own",  # batch_norm_multiple: one BN set per branch
}
COLT_SAMPLER = {
    "method.sampler.strategy": "colt",
    "method.sampler.warmup_epochs": 100,
    "method.sampler.interval": 25,
    "method.sampler.budget": 10000,
    "method.sampler.num_clusters": 10,
    "method.sampler.kmeans": "sklearn",
    "method.sampler.kmeans_inits": 10,  # scikit-learn's n_init default when COLT was released
    "method.sampler.kmeans_iterations": 300,  # scikit-learn's max_iter default
    "method.sampler.colt_topk": 10,
    "method.sampler.colt_temperature": 1.0,
    "method.sampler.colt_ema": 0.97,
    "method.sampler.budget_remainder": "last",
    "method.sampler.tail_score": "colt",
    "method.sampler.batch_mode": "mix",
}
OFFICIAL = {
    "sdclr": SDCLR,
    "bcl": {
        "method.variant": "I",
        "method.weight_decay": 5.0e-4,  # BCL README: train.py BCL_I ... --weight_decay 5e-4
        "method.projector_layers": 2,
        "method.loss_ema": 0.97,
    },
    "bcl_d": {
        "method.variant": "D",
        "method.weight_decay": 1.0e-4,  # train_sdclr.py BCL_D ... --weight_decay 1e-4
        "method.projector_layers": 2,  # proj_head(..., twoLayerProj=True)
        "method.pruned_projector_norms": "own",
        "method.prune_percent": 0.9,
        "method.loss_ema": 0.97,
    },
    "colt": {
        "optim.schedule.weight_decay": 1.0e-4,
        "method.beta": 0.0,
        "method.domain_loss": "supcon",
        "method.lambda_dd": 0.0,  # --sup_weight 0 on CIFAR-10
        **COLT_SAMPLER,
    },
    "sdclr_colt": {**SDCLR, **COLT_SAMPLER},
}


@pytest.mark.parametrize("method", sorted(OFFICIAL))
def test_each_peer_preset_is_its_official_setting_key_by_key(tmp_path, method):
    cfg = compose_train(tmp_path, [f"method={method}", "ood=embedded"])
    for key, expected in {**COMMON, **OFFICIAL[method]}.items():
        assert OmegaConf.select(cfg, key) == expected, key


def test_the_built_peers_have_the_official_heads_and_decay(tmp_path):
    sdclr = instantiate(compose_train(tmp_path, ["method=sdclr"]).method)
    linears = [m for m in sdclr.projector if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3 and [m.bias is None for m in linears] == [False, True, True]
    assert sdclr.pruned_projector is not None and len(sdclr.pruned_projector.norms) == 3
    bcl = instantiate(compose_train(tmp_path, ["method=bcl"]).method)
    assert bcl.pruned is None and bcl.pruned_projector is None and len(bcl.projector) == 5
    assert bcl.schedule["weight_decay"] == 5e-4


def test_three_layer_projector_against_a_direct_reference():
    torch.manual_seed(0)
    head = Projector(8, out_dim=4, num_layers=3).double().eval()
    x = torch.randn(5, 8, dtype=torch.float64)
    lin1, bn1, _, lin2, bn2, _, lin3, bn3 = head

    def bn(layer, v):
        return (v - layer.running_mean) / torch.sqrt(layer.running_var + layer.eps) * (
            layer.weight
        ) + layer.bias

    expected = bn(
        bn3,
        bn(bn2, (bn(bn1, x @ lin1.weight.T + lin1.bias)).relu() @ lin2.weight.T).relu()
        @ lin3.weight.T,
    )
    torch.testing.assert_close(head(x), expected)
    with pytest.raises(ConfigError, match="2 or 3 linear layers"):
        Projector(8, num_layers=4)


def test_the_pruned_branch_runs_the_projector_with_its_own_batchnorms(tmp_path):
    """Train-mode forwards: the pruned view updates only the pruned branch's projector
    statistics, and equals the projector with its BatchNorms swapped for the branch's."""
    module = instantiate(compose_train(tmp_path, ["method=sdclr"]).method).train()
    dense_stats = copy.deepcopy(module.projector.state_dict())
    features = torch.randn(16, module.projector.in_dim)
    reference = copy.deepcopy(module.projector)
    for name in module.pruned_projector.norm_names:
        reference[int(name)] = copy.deepcopy(module.pruned_projector.norms[name])
    out = module.pruned_projection(features)
    torch.testing.assert_close(out, reference(features))
    for key, value in module.projector.state_dict().items():
        assert torch.equal(value, dense_stats[key]), key  # untouched by the pruned view
    own = module.pruned_projector.norms["1"].running_mean
    assert not torch.equal(own, dense_stats["1.running_mean"])
    shared = instantiate(
        compose_train(tmp_path, ["method=sdclr", "method.pruned_projector_norms=shared"]).method
    )
    assert shared.pruned_projector is None
    with pytest.raises(Exception, match="pruned_projector_norms"):
        instantiate(
            compose_train(tmp_path, ["method=sdclr", "method.pruned_projector_norms=x"]).method
        )


def test_sklearn_kmeans_is_colts_call():
    from sklearn.cluster import KMeans

    z = torch.nn.functional.normalize(
        torch.randn(300, 16, generator=torch.Generator().manual_seed(1)), dim=1
    )
    result = sklearn_kmeans(z, 5, n_init=10, max_iter=300)
    reference = KMeans(n_clusters=5, random_state=0, n_init=10, max_iter=300).fit(z.numpy())
    assert result.pseudo_labels.tolist() == reference.labels_.tolist()
    torch.testing.assert_close(result.centroids, torch.from_numpy(reference.cluster_centers_))
    assert result.cluster_sizes.tolist() == np.bincount(reference.labels_, minlength=5).tolist()
    with pytest.raises(ConfigError, match="only the colt strategy"):
        SamplerConfig(strategy="kl_cluster", kmeans="sklearn")
    with pytest.raises(ConfigError, match="batch_mode"):
        SamplerConfig(batch_mode="concat")


def test_split_mixed_batch_keeps_rows_with_their_part():
    batch = {
        "index": torch.tensor([3, 12, 0, 15, 7]),
        "label": torch.tensor([1, 2, 3, 4, 5]),
        "image_uint8": torch.arange(5)[:, None].expand(5, 3),
        "views": [torch.arange(5), torch.arange(5) + 10],
    }
    parts = split_mixed_batch(batch, num_id=10)
    assert parts["id"]["index"].tolist() == [3, 0, 7] and parts["ood"]["index"].tolist() == [12, 15]
    assert parts["id"]["label"].tolist() == [1, 3, 5]
    assert parts["ood"]["image_uint8"][:, 0].tolist() == [1, 3]
    assert [v.tolist() for v in parts["ood"]["views"]] == [[1, 3], [11, 13]]
    only_id = split_mixed_batch({k: v for k, v in batch.items() if k != "views"}, num_id=100)
    assert "ood" not in only_id and only_id["id"]["index"].tolist() == [3, 12, 0, 15, 7]


def test_mixed_batches_see_every_id_image_and_every_pick_once_per_epoch(tmp_path):
    """COLT's ConcatDataset + shuffle: one order over ID ∪ picks, (N + K) // B steps of B images,
    each image at most once (only the last partial batch is dropped)."""
    dm = make_dm(tmp_path)
    dm.attach_ood_pool(
        OODPoolDataModule("crops", lambda: sample_photo_crops(num_crops=100, seed=0), seed=3)
    )
    dm.setup("fit")
    picks = np.arange(0, 100, 2)
    dm.set_ood_subset(picks, np.zeros(len(picks), dtype=np.int64), batch_mode="mix")
    n_id, batch = len(dm.train_set), dm.batch_size_per_device()
    seen_id, seen_ood, steps = [], [], 0
    for raw, _, _ in dm.train_dataloader():
        parts = dm.on_after_batch_transfer(raw, 0)
        rows = sum(p["index"].shape[0] for p in parts.values())
        assert rows == batch and parts["id"]["views"][0].shape[0] == parts["id"]["index"].shape[0]
        seen_id += parts["id"]["index"].tolist()
        seen_ood += parts.get("ood", {"index": torch.zeros(0)})["index"].tolist()
        steps += 1
    assert steps == (n_id + len(picks)) // batch
    assert len(set(seen_id)) == len(seen_id) and len(set(seen_ood)) == len(seen_ood)
    assert len(seen_id) + len(seen_ood) == steps * batch > n_id  # OOD rows took ID rows' places
    assert all(n_id <= i < n_id + len(picks) for i in seen_ood)
    assert 0 < len(seen_ood) and len(seen_id) < n_id


def test_mixed_batches_refuse_an_ood_batch_ratio(tmp_path):
    dm = make_dm(tmp_path)
    dm.attach_ood_pool(
        OODPoolDataModule(
            "crops", lambda: sample_photo_crops(num_crops=100, seed=0), batch_ratio=1.0
        )
    )
    with pytest.raises(ConfigError, match="ood.batch_ratio=null"):
        dm.set_ood_subset(np.arange(4), np.zeros(4, dtype=np.int64), batch_mode="mix")


class RecordLR(Callback):
    def __init__(self):
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


@pytest.mark.slow
@pytest.mark.parametrize("first_round", [0, 1])
def test_colts_schedule_counts_the_longer_mixed_epochs(tmp_path, first_round):
    """As COLT's code: warm-up over warmup_epochs epochs of the ID set alone, then one cosine over
    every step actually taken, the mixed epochs' (N_id + K) // B included. A round before epoch
    0 (W = 0) runs after epoch 0's loader is built: its picks join from epoch 1, as with W = 1."""
    from ltcl.cli.train import train
    from ltcl.optim import warmup_cosine_factor

    overrides = [
        "method=colt", "ood=embedded", "ood.source.num_crops=400",
        f"method.sampler.warmup_epochs={first_round}",
        "method.sampler.budget=100", "method.sampler.kmeans_iterations=5", "trainer.max_epochs=2",
        "optim.schedule.warmup_epochs=1", "eval.protocols=[knn]", "eval.plots=false",
    ]  # fmt: skip
    cfg = compose_train(tmp_path, overrides)
    record = RecordLR()
    results = train(cfg, extra_callbacks=[record])
    num_id = results["split"]["num_train"]
    batch = cfg.data.global_batch_size
    id_steps, mixed_steps = num_id // batch, (num_id + 100) // batch
    assert len(record.lrs) == id_steps + mixed_steps and mixed_steps > id_steps
    total, peak = id_steps + mixed_steps, max(record.lrs)
    expected = [peak * warmup_cosine_factor(s, total, id_steps, 0.0) for s in range(total)]
    torch.testing.assert_close(torch.tensor(record.lrs), torch.tensor(expected))
