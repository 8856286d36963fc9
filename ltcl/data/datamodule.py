"""LightningDataModules for the long-tailed ID set and the OOD pool.

Both stages and every method share them. The ID module gives the two-view long-tailed
training set (each item carries its index, for methods that keep per-sample state) and the
balanced sets that evaluation needs: the kNN bank / full-shot probe set, the held-out
validation split and the test set.

Augmentation runs either per sample in the DataLoader workers (torchvision v2) or, by
default, batched on the training device after transfer (kornia, per-sample parameters):
the loaders then only move uint8 pixels, which keeps a 2-core machine or a fast GPU busy
with training rather than with JPEG-free but Python-heavy per-image transforms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from ltcl.data.batch_sharding import EvalShardSampler, GlobalBatchShardSampler
from ltcl.data.batched_transforms import BatchedAugment
from ltcl.data.datasets import EvalDataset, SampledOODDataset, TwoViewDataset
from ltcl.data.sources import ImageSource, naming_the_source
from ltcl.data.splits import (
    LongTailSplit,
    class_groups,
    make_long_tailed_split,
    save_split,
    split_from_index_file,
)
from ltcl.data.transforms import PerSampleAugment, TestTransform, augment_config
from ltcl.errors import ConfigError, DataError
from ltcl.models.embedding import embed_all

AUGMENT_ON = ("device", "workers")
SPLIT_KINDS = ("exponential", "index_file", "given")


def carve_balanced(labels: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Take `per_class` random indices of each class (a test set); return (taken, rest)."""
    rng = np.random.default_rng(seed)
    taken = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) <= per_class:
            raise DataError(
                f"class {c} has {len(members)} images, not more than test_per_class={per_class}: "
                "lower data.test_per_class or give a separate test source"
            )
        taken.append(rng.choice(members, per_class, replace=False))
    taken = np.sort(np.concatenate(taken))
    rest = np.setdiff1d(np.arange(len(labels)), taken)
    return taken, rest


def split_mixed_batch(batch: dict[str, Any], num_id: int) -> dict[str, Any]:
    """A batch of the mixed ID + OOD order as ``{"id": part, "ood": part}`` (the shape every
    method reads): rows with ``index < num_id`` are ID images, the rest sampled OOD images.
    "ood" is left out when the batch drew none."""
    is_id = batch["index"] < num_id

    def take(mask):
        return {
            key: [v[mask] for v in value] if isinstance(value, list) else value[mask]
            for key, value in batch.items()
        }

    parts = {"id": take(is_id)}
    if not bool(is_id.all()):
        parts["ood"] = take(~is_id)
    return parts


class LongTailDataModule(L.LightningDataModule):
    """Long-tailed ID data: two-view training set plus balanced bank / val / test sets.

    Args:
        name: dataset name recorded in results (e.g. "cifar10_lt").
        num_classes: number of ID classes; checked against the source.
        train_source: callable returning the :class:`ImageSource` of the training images
            (Hydra `_partial_: true`), loaded in `setup` so that composing a config is cheap.
        test_source: the same for the test images; None carves `test_per_class` images of
            each class out of the training source first (the embedded default data).
        split: kwargs of :func:`make_long_tailed_split` (imbalance_ratio, n_max,
            val_per_class, seed, class_order), or `index_file` (+ `val_index_file`) for the
            published SDCLR/COLT/BCL files.
        augment: kwargs of :meth:`AugmentConfig.from_recipe` (recipe, size, ...).
        augment_on: "device" (batched, per-sample parameters, after transfer) or "workers".
        global_batch_size: images per step over all processes; split by the world size.
        knn_bank_per_class: cap of the kNN bank per class (None: the whole balanced set).
        group_rule: "thirds" (CIFAR) or "threshold" (>100 / 20-100 / <20) for many/medium/few.
        split_dir: where the split's index files and checksums are written (the run dir).
        val_source, bank_source: with `split.kind=given` (list-file datasets whose train list
            is already long-tailed): the validation images and the balanced kNN / probe set.
        root, lists_dir, image_root: user paths that the source configs interpolate;
            recorded in results.
        seed: the run's seed. Shuffles and augmentations of epoch e are drawn from generators
            seeded with (seed, epoch, rank), not from the global RNG, so that a run resumed
            at an epoch boundary draws exactly what the uninterrupted run draws.
    """

    def __init__(
        self,
        name: str,
        num_classes: int,
        train_source: Callable[[], ImageSource],
        test_source: Callable[[], ImageSource] | None = None,
        split: dict | None = None,
        augment: dict | None = None,
        augment_on: str = "device",
        global_batch_size: int = 512,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        knn_bank_per_class: int | None = None,
        test_per_class: int | None = None,
        group_rule: str = "thirds",
        split_dir: str | None = None,
        val_source: Callable[[], ImageSource] | None = None,
        bank_source: Callable[[], ImageSource] | None = None,
        root: str | None = None,
        lists_dir: str | None = None,
        image_root: str | None = None,
        seed: int = 0,
    ):
        super().__init__()
        if augment_on not in AUGMENT_ON:
            raise ConfigError(f"unknown data.augment_on '{augment_on}': use one of {AUGMENT_ON}")
        if group_rule not in ("thirds", "threshold"):
            raise ConfigError(f"unknown data.group_rule '{group_rule}': use thirds or threshold")
        if global_batch_size < 1:
            raise ConfigError(f"data.global_batch_size must be >= 1, got {global_batch_size}")
        if test_source is None and not test_per_class:
            raise ConfigError(
                f"data config '{name}' has neither a test source nor test_per_class: set one"
            )
        self.name, self.num_classes = name, num_classes
        self.train_source_fn, self.test_source_fn = train_source, test_source
        self.val_source_fn, self.bank_source_fn = val_source, bank_source
        self.paths = {"root": root, "lists_dir": lists_dir, "image_root": image_root}
        self.split_cfg = dict(split or {})
        self.split_kind = self.split_cfg.pop("kind", "exponential")
        if self.split_kind not in SPLIT_KINDS:
            raise ConfigError(
                f"unknown data.split.kind '{self.split_kind}': use one of {SPLIT_KINDS}"
            )
        if self.split_kind == "given" and val_source is None:
            raise ConfigError("data.split.kind=given needs a val_source (the validation list)")
        if self.split_kind == "index_file" and not self.split_cfg.get("index_file"):
            raise ConfigError(
                "data.split.kind=index_file needs data.split.index_file=<path of split*_D_i.npy>"
            )
        self.augment_cfg = augment_config(augment)
        self.augment_on = augment_on
        self.global_batch_size = global_batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.knn_bank_per_class = knn_bank_per_class
        self.test_per_class = test_per_class
        self.group_rule = group_rule
        self.split_dir = split_dir
        self.split: LongTailSplit | None = None
        self.split_manifest: dict | None = None
        self.class_groups: dict[str, list[int]] | None = None
        self.seed = seed
        self._augment_generator = torch.Generator()
        self._batched_augment: BatchedAugment | None = None
        self.view_hook: Callable | None = None  # see set_view_hook
        self._prepared = False
        # Stage 1: the OOD pool and the subset that the last sampling round picked.
        self.ood_pool = None
        self.ood_subset = np.zeros(0, dtype=np.int64)
        self.ood_batch_mode = "add"
        self.ood_subset_labels = np.zeros(0, dtype=np.int64)

    # ---- set-up ---------------------------------------------------------------------------
    def batch_size_per_device(self) -> int:
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.global_batch_size % world:
            raise ConfigError(
                f"data.global_batch_size={self.global_batch_size} does not divide by the "
                f"{world} processes: choose a multiple of {world}"
            )
        return self.global_batch_size // world

    def setup(self, stage: str | None = None) -> None:
        if self.ood_pool is not None:
            self.ood_pool.setup(stage)
        if self._prepared:
            return
        with naming_the_source("data.train_source"):
            source = self.train_source_fn()
        self._check_source(source, "train")
        labels = np.asarray(source.labels)
        if self.test_source_fn is not None:
            with naming_the_source("data.test_source"):
                test_source = self.test_source_fn()
            self._check_source(test_source, "test")
            train_names, test_names = list(source.classes), list(test_source.classes)
            if train_names and test_names and train_names != test_names:
                differ = sorted(set(train_names) ^ set(test_names)) or "their order"
                raise DataError(
                    f"the train and test sets name their classes differently ({differ}): label "
                    "k must be the same class in both; make the test folder's class folders "
                    "match the train folder's"
                )
            test_indices = np.arange(len(test_source))
            pool = np.arange(len(source))
        else:
            test_source = source
            test_indices, pool = carve_balanced(
                labels, self.test_per_class, seed=int(self.split_cfg.get("seed", 0)) + 10_000
            )
        val_source = bank_source = source
        if self.split_kind == "given":
            with naming_the_source("data.val_source"):
                val_source = self.val_source_fn()
            self._check_source(val_source, "validation")
            with naming_the_source("data.bank_source"):
                bank_source = self.bank_source_fn() if self.bank_source_fn else source
            self._check_source(bank_source, "bank")
            self.split = self._given_split(labels, len(val_source), len(bank_source))
        else:
            self.split = self._make_split(labels, pool)
        self._check_disjoint(test_indices if test_source is source else None)
        if self.split_dir:
            self.split_manifest = save_split(self.split, self.split_dir)
        else:
            self.split_manifest = {"split": self.split.to_dict()}
        self.class_groups = class_groups(self.split.class_counts, self.group_rule)

        test_transform = TestTransform(self.augment_cfg)
        if self.augment_on == "workers":
            train_augment = PerSampleAugment(self.augment_cfg)
        else:
            train_augment = None
            self._batched_augment = BatchedAugment(
                self.augment_cfg, generator=self._augment_generator
            )
        self.train_set = TwoViewDataset(source, self.split.train_indices, train_augment)
        bank_labels = np.asarray(bank_source.labels)
        bank = self._cap_per_class(self.split.balanced_indices, bank_labels)
        self.bank_set = EvalDataset(bank_source, bank, test_transform)
        self.val_set = EvalDataset(val_source, self.split.val_indices, test_transform)
        self.test_set = EvalDataset(test_source, test_indices, test_transform)
        if len(self.train_set) < self.global_batch_size:
            raise ConfigError(
                f"the long-tailed training set has {len(self.train_set)} images, fewer than "
                f"data.global_batch_size={self.global_batch_size}: lower the batch size"
            )
        self._prepared = True

    def _check_source(self, source: ImageSource, which: str) -> None:
        if len(source) == 0:
            key = {"validation": "val", "bank": "bank", "test": "test"}.get(which, "train")
            raise DataError(
                f"the {which} source of '{self.name}' has no images: check data.{key}_source.root"
            )
        if source.classes and len(source.classes) != self.num_classes:
            raise ConfigError(
                f"the {which} source of '{self.name}' has {len(source.classes)} classes but "
                f"data.num_classes={self.num_classes}: fix data.num_classes or the data path"
            )

    def _given_split(self, labels: np.ndarray, num_val: int, num_bank: int) -> LongTailSplit:
        """The train source is the long-tailed set itself (ImageNet-100-LT, Places-LT lists)."""
        counts = np.bincount(labels, minlength=self.num_classes)
        if (counts == 0).any():
            missing = np.flatnonzero(counts == 0).tolist()[:5]
            raise DataError(
                f"classes {missing} have no training images in '{self.name}': check the train "
                "list and data.num_classes"
            )
        return LongTailSplit(
            train_indices=np.arange(len(labels)),
            val_indices=np.arange(num_val),
            balanced_indices=np.arange(num_bank),
            class_counts=counts.tolist(),
            class_order=np.argsort(-counts, kind="stable").tolist(),
            imbalance_ratio=float(counts.max() / counts.min()),
            n_max=int(counts.max()),
            seed=int(self.split_cfg.get("seed", 0)),
            val_per_class=0,
        )

    def _make_split(self, labels: np.ndarray, pool: np.ndarray) -> LongTailSplit:
        cfg = dict(self.split_cfg)
        index_file = cfg.pop("index_file", None)
        val_index_file = cfg.pop("val_index_file", None)
        if self.split_kind == "index_file":
            return split_from_index_file(
                labels, self.num_classes, index_file, val_index_path=val_index_file, pool=pool
            )
        split = make_long_tailed_split(labels[pool], self.num_classes, **cfg)
        # Map positions in `pool` back to source indices.
        split.train_indices = pool[split.train_indices]
        split.val_indices = pool[split.val_indices]
        split.balanced_indices = pool[split.balanced_indices]
        return split

    def _check_disjoint(self, carved_test: np.ndarray | None) -> None:
        """No image is both trained on and validated on, and none of the test images carved
        from the training source (``data.test_per_class``) is trained on, validated on or in
        the kNN bank, whatever the split kind: a published index file of the full source would
        otherwise put test images into training, and every test number would be inflated."""
        split = self.split
        both = np.intersect1d(split.train_indices, split.val_indices).size
        if both:
            raise DataError(
                f"{both} images are in both the training and the validation split of "
                f"'{self.name}': give a validation index file disjoint from the training one"
            )
        if carved_test is None:
            return
        for part, indices in (
            ("training", split.train_indices),
            ("validation", split.val_indices),
            ("kNN bank (balanced)", split.balanced_indices),
        ):
            overlap = np.intersect1d(indices, carved_test).size
            if overlap:
                where = (
                    f"data.split.index_file={self.split_cfg.get('index_file')}"
                    if self.split_kind == "index_file"
                    else f"the {self.split_kind} split"
                )
                raise DataError(
                    f"{where} puts {overlap} of the {len(carved_test)} test images that "
                    f"'{self.name}' carves from its training source (data.test_per_class="
                    f"{self.test_per_class}) into the {part} set: test images would be trained "
                    "or tuned on; use an index file of the training part only, or a dataset "
                    "with its own test set (data.test_source)"
                )

    def _cap_per_class(self, indices: np.ndarray, labels: np.ndarray) -> np.ndarray:
        if not self.knn_bank_per_class:
            return indices
        rng = np.random.default_rng(0)
        keep = []
        for c in range(self.num_classes):
            members = indices[labels[indices] == c]
            if len(members) > self.knn_bank_per_class:
                members = np.sort(rng.choice(members, self.knn_bank_per_class, replace=False))
            keep.append(members)
        return np.sort(np.concatenate(keep))

    # ---- loaders --------------------------------------------------------------------------
    def _epoch_seed(self, stream: int, per_rank: bool = False) -> int:
        """Seed of one random stream (0: ID order, 1: OOD order, 2: augmentation) of this epoch.

        The data order is the same on every process (each takes its slice of the global
        batch); the augmentation stream is per rank, since each rank draws for its own images.
        """
        trainer = self.trainer
        epoch = trainer.current_epoch if trainer is not None else 0
        rank = trainer.global_rank if (trainer is not None and per_rank) else 0
        return int(np.random.SeedSequence([self.seed, epoch, rank, stream]).generate_state(1)[0])

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _loader(
        self, dataset: Dataset, batch_size: int, train: bool, stream: int = 0
    ) -> DataLoader:
        # Our samplers shard across processes themselves (ltcl/data/batch_sharding.py), so that the
        # global batch does not depend on the number of processes; the trainer configs set
        # use_distributed_sampler: false.
        rank, world = self._rank_and_world()
        if train:
            sampler = GlobalBatchShardSampler(
                len(dataset), batch_size, self._epoch_seed(stream), rank, world
            )
        else:
            sampler = EvalShardSampler(len(dataset), rank, world)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=train,  # equal shapes on every process, or all_gather hangs
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def attach_ood_pool(self, pool) -> None:
        """Give stage 1 an :class:`~ltcl.data.ood_pool.OODPoolDataModule` to sample from."""
        self.ood_pool = pool

    def set_ood_subset(
        self, picked: np.ndarray, pseudo_labels: np.ndarray, batch_mode: str = "add"
    ) -> None:
        """The OOD images (pool indices) and pseudo labels that join training from now on, and
        how: ``add`` puts OOD images on top of every ID batch (the ID set defines the epoch);
        ``mix`` joins them to the ID set and shuffles the union (COLT's ``ConcatDataset``: an
        epoch has ``(N_id + K) // B`` steps of B images, each split between ID and OOD at
        random)."""
        if batch_mode not in ("add", "mix"):
            raise ConfigError(f"unknown OOD batch mode '{batch_mode}': use add or mix")
        if batch_mode == "mix" and getattr(self.ood_pool, "batch_ratio", None) is not None:
            raise ConfigError(
                f"ood.batch_ratio={self.ood_pool.batch_ratio} sets OOD images per ID image, but "
                "method.sampler.batch_mode=mix (COLT's batches) mixes the picks into the ID set "
                "and reads no ratio: set ood.batch_ratio=null, or method.sampler.batch_mode=add"
            )
        self.ood_subset = np.asarray(picked, dtype=np.int64)
        self.ood_subset_labels = np.asarray(pseudo_labels, dtype=np.int64)
        self.ood_batch_mode = batch_mode

    def ood_batch_size_per_device(self) -> int:
        """OOD images per step: by default the sampled set's share of an epoch, so that each
        sampled image is seen about once per epoch (as when COLT concatenates ID and sampled OOD
        sets); ``ood.batch_ratio`` fixes it instead (1.0: 1:1 ID:OOD batches)."""
        per_device = self.batch_size_per_device()
        ratio = getattr(self.ood_pool, "batch_ratio", None)
        share = ratio if ratio is not None else len(self.ood_subset) / max(1, len(self.train_set))
        return max(1, round(per_device * share))

    def train_dataloader(self):
        # Built anew every epoch (the trainer reloads it): the order is seeded by (seed, epoch),
        # the augmentation by (seed, epoch, rank).
        self._augment_generator.manual_seed(self._epoch_seed(2, per_rank=True))
        if self.ood_pool is None or len(self.ood_subset) == 0:
            id_loader = self._loader(self.train_set, self.batch_size_per_device(), train=True)
            return CombinedLoader({"id": id_loader}, mode="max_size_cycle")
        ood_set = SampledOODDataset(
            self.ood_pool.training_dataset(self.ood_subset, self.augment_on),
            self.ood_subset_labels,
            id_offset=len(self.train_set),
        )
        if self.ood_batch_mode == "mix":
            # One shuffled order over ID + OOD (stream 0, as the ID order); each batch is split
            # back into its ID and OOD parts after the transfer (on_after_batch_transfer).
            mixed = ConcatDataset([self.train_set, ood_set])
            loader = self._loader(mixed, self.batch_size_per_device(), train=True)
            return CombinedLoader({"mixed": loader}, mode="max_size_cycle")
        id_loader = self._loader(self.train_set, self.batch_size_per_device(), train=True)
        ood_batch = self.ood_batch_size_per_device()
        ood_loader = self._loader(ood_set, ood_batch, train=True, stream=1)
        # The ID loader defines the epoch: a shorter OOD loader is cycled,
        # a longer one is cut where the ID loader ends.
        mode = "max_size_cycle" if len(ood_loader) < len(id_loader) else "min_size"
        return CombinedLoader({"id": id_loader, "ood": ood_loader}, mode=mode)

    def val_dataloader(self) -> list[DataLoader]:
        """[kNN bank (balanced train), queries (held-out validation split)]."""
        return [
            self._loader(self.bank_set, self.eval_batch_size, train=False),
            self._loader(self.val_set, self.eval_batch_size, train=False),
        ]

    def test_dataloader(self) -> list[DataLoader]:
        """[kNN bank (balanced train), queries (test set)]."""
        return [
            self._loader(self.bank_set, self.eval_batch_size, train=False),
            self._loader(self.test_set, self.eval_batch_size, train=False),
        ]

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict:
        """Batched per-sample augmentation on the training device (augment_on=device).

        Every training batch has one shape, ``{"id": part, "ood": part}`` ("ood" only while a
        sampled OOD subset exists), each part ``{index, label, views}``; evaluation batches
        are ``{index, image, label}``.
        """
        if "mixed" in batch:
            batch = split_mixed_batch(batch["mixed"], len(self.train_set))
        if "id" in batch:
            return {k: self._augment_part(v, k) for k, v in batch.items()}
        return batch

    def set_view_hook(self, hook: Callable | None) -> None:
        """Let a method modulate each ID image's views (an extension point; BCL's boosted
        augmentation): ``hook(index, views, generator) -> views``, called on the training
        device with the augmented, not yet normalised [0, 1] views of both copies (2B rows:
        rows i and B + i are image ``index[i]``) and this epoch's per-rank augmentation
        generator (so that a resumed run draws what the uninterrupted one drew)."""
        if hook is not None and self.augment_on != "device":
            raise ConfigError(
                "this method augments each image itself on the training device: use "
                "data.augment_on=device (the default), not workers"
            )
        self.view_hook = hook

    def _augment_part(self, batch: dict[str, Any], part: str = "id") -> dict[str, Any]:
        if "image_uint8" in batch:
            augment = self._batched_augment.to(batch["image_uint8"].device)
            with torch.no_grad():
                images = batch.pop("image_uint8")
                # One call on both copies (each row still draws its own parameters): half the
                # kernel launches of two calls.
                extra = None
                if part == "id" and self.view_hook is not None:
                    hook, index, generator = self.view_hook, batch["index"], self._augment_generator

                    def extra(views):
                        return hook(index, views, generator)

                batch["views"] = list(augment(torch.cat([images, images]), extra).chunk(2))
        return batch

    # ---- embedding a whole set (sampling rounds, evaluation) --------------------------------
    EMBEDDING_SETS = ("train", "bank", "val", "test", "ood")

    def embedding_loader(
        self, which: str, indices: np.ndarray | None = None, batch_size: int | None = None
    ) -> DataLoader:
        """Test-transformed images of one set, in order, for embedding: ``train`` (the
        long-tailed training images), ``bank`` (the balanced source; `indices` default to the
        kNN bank), ``val``, ``test``, or ``ood`` (pool `indices`)."""
        self.setup("fit")
        sets = {
            "train": self.train_set,
            "bank": self.bank_set,
            "val": self.val_set,
            "test": self.test_set,
        }
        if which == "ood":
            if self.ood_pool is None or indices is None:
                raise ConfigError("embedding the OOD pool needs an attached pool and indices")
            self.ood_pool.setup()
            source = self.ood_pool.pool
        elif which in sets:
            source = sets[which].source
            indices = sets[which].indices if indices is None else indices
        else:
            raise ValueError(f"unknown set '{which}': use one of {self.EMBEDDING_SETS}")
        return DataLoader(
            EvalDataset(source, np.asarray(indices), self.test_set.transform),
            batch_size=batch_size or self.eval_batch_size,
            num_workers=self.num_workers,
        )

    def embed(self, fn, which: str, indices: np.ndarray | None = None, **options):
        """(fn(images), labels) over one set (see :meth:`embedding_loader`); `options` go to
        :func:`ltcl.models.embedding.embed_all` (device, modules, to_cpu, bf16_on_cuda) except
        batch_size."""
        loader = self.embedding_loader(which, indices, options.pop("batch_size", None))
        return embed_all(fn, loader, **options)

    def summary(self) -> dict[str, Any]:
        """What results.json records about the data."""
        assert self.split is not None, "call setup() first"
        return {
            "dataset": self.name,
            "num_classes": self.num_classes,
            "train_images": len(self.train_set),
            "class_counts": [int(c) for c in self.split.class_counts],
            "class_groups": self.class_groups,
            "split": self.split_manifest,
        }
