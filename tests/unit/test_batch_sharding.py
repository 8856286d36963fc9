"""The samplers shard each global batch across processes: N processes see what 1 process sees."""

import pytest
import torch

from ltcl.data.batch_sharding import EvalShardSampler, GlobalBatchShardSampler
from ltcl.errors import ConfigError


@pytest.mark.parametrize("world", [2, 3, 4])
def test_shards_of_a_global_batch_equal_the_single_process_batch(world):
    length, per_device, seed = 103, 5, 7
    single = list(GlobalBatchShardSampler(length, per_device * world, seed))
    shards = [
        list(GlobalBatchShardSampler(length, per_device, seed, r, world)) for r in range(world)
    ]
    assert all(len(s) == len(single) // world for s in shards)
    for step in range(len(single) // (per_device * world)):
        global_batch = single[step * per_device * world : (step + 1) * per_device * world]
        local = [s[step * per_device : (step + 1) * per_device] for s in shards]
        assert sum(local, []) == global_batch


def test_one_epoch_is_a_permutation_without_the_remainder_and_seeds_differ():
    a = list(GlobalBatchShardSampler(50, 8, seed=1))
    assert len(a) == 48 and len(set(a)) == 48 and set(a) <= set(range(50))
    assert a != list(GlobalBatchShardSampler(50, 8, seed=2))
    assert a == list(GlobalBatchShardSampler(50, 8, seed=1))
    # Seeded like torch.randperm, so the order is reproducible across processes and runs.
    expected = torch.randperm(50, generator=torch.Generator().manual_seed(1))[:48].tolist()
    assert a == expected


def test_eval_shards_cover_every_item_once():
    shards = [list(EvalShardSampler(11, r, 3)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(11))
    assert [len(EvalShardSampler(11, r, 3)) for r in range(3)] == [4, 4, 3]


@pytest.mark.parametrize(
    "make",
    [
        lambda: GlobalBatchShardSampler(10, 2, 0, rank=2, world_size=2),
        lambda: GlobalBatchShardSampler(10, 0, 0),
        lambda: EvalShardSampler(10, rank=-1, world_size=2),
    ],
)
def test_bad_rank_or_batch(make):
    with pytest.raises(ConfigError):
        make()
