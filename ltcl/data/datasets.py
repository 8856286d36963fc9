"""The Dataset classes every DataModule builds: two-view training items, sampled OOD items and
evaluation items. Items carry their index, so methods can keep per-sample state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ltcl.data.sources import ImageSource


def _image_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> uint8 3xHxW tensor (no copy of the float kind)."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


class TwoViewDataset(Dataset):
    """The long-tailed training set: item = {index, views | image_uint8, label}.

    `index` is the position in the training set (0..N-1), stable across epochs, so that
    per-sample statistics (BCL's loss EMA, COLT's tail score) can be kept.
    """

    def __init__(self, source: ImageSource, indices: np.ndarray, augment: Callable | None):
        self.source, self.indices, self.augment = source, np.asarray(indices), augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        j = int(self.indices[i])
        image = self.source.load(j)
        item = {"index": i, "label": int(self.source.labels[j])}
        if self.augment is None:
            item["image_uint8"] = _image_tensor(image)
        else:
            item["views"] = [self.augment(image), self.augment(image)]
        return item


class SampledOODDataset(Dataset):
    """The sampled OOD images as training items: {index (offset), views | image_uint8,
    pseudo_label}. Indices are offset by the ID set's length so that an OOD image never shares
    an id with an ID image."""

    def __init__(self, two_views: TwoViewDataset, pseudo_labels: np.ndarray, id_offset: int):
        self.two_views, self.pseudo_labels, self.id_offset = two_views, pseudo_labels, id_offset

    def __len__(self) -> int:
        return len(self.two_views)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.two_views[i]
        item["index"] = self.id_offset + i
        item["label"] = int(self.pseudo_labels[i])
        return item


class EvalDataset(Dataset):
    """A balanced evaluation set: item = {index, image (test transform), label}."""

    def __init__(self, source: ImageSource, indices: np.ndarray, transform: Callable):
        self.source, self.indices, self.transform = source, np.asarray(indices), transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        j = int(self.indices[i])
        return {
            "index": i,
            "image": self.transform(self.source.load(j)),
            "label": int(self.source.labels[j]),
        }
