"""ShardedSampler: disjoint shards, same order on every rank and restart, even training shards, resume."""

import pytest

from videogn.data.samplers import ShardedSampler


def test_shards_are_disjoint_and_cover_everything_for_eval():
    shards = [list(ShardedSampler(11, shuffle=False, rank=r, world_size=3)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(11))  # nothing padded, nothing dropped
    assert [len(ShardedSampler(11, shuffle=False, rank=r, world_size=3)) for r in range(3)] == [4, 4, 3]


def test_training_shards_are_even_and_reshuffled_per_epoch():
    samplers = [ShardedSampler(11, shuffle=True, seed=5, rank=r, world_size=2, even=True) for r in range(2)]
    first = [list(s) for s in samplers]
    assert [len(x) for x in first] == [5, 5] and not set(first[0]) & set(first[1])
    assert first == [list(ShardedSampler(11, shuffle=True, seed=5, rank=r, world_size=2, even=True)) for r in range(2)]
    for s in samplers:
        s.set_epoch(1)
    assert [list(s) for s in samplers] != first


def test_resume_skips_consumed_items_of_that_epoch_only():
    sampler = ShardedSampler(20, shuffle=True, seed=1, even=True)
    sampler.set_epoch(3)
    full = list(sampler)
    sampler.resume(3, 8)
    assert list(sampler) == full[8:]
    assert list(sampler) == full  # only once
    fresh = ShardedSampler(20, shuffle=True, seed=1, even=True)
    fresh.resume(3, 8)  # Lightning makes the first iterator of a resumed run before calling set_epoch
    assert list(fresh) == full[8:]
    fresh.set_epoch(4)
    assert len(list(fresh)) == 20 and len(fresh) == 20


def test_groups_stay_together_on_one_rank_in_order():
    """Evaluation shards by video: a video's views (a group) go to one rank, consecutive, none twice or lost."""
    shards = [list(ShardedSampler(15, shuffle=False, rank=r, world_size=2, group=3)) for r in range(2)]
    assert shards == [[0, 1, 2, 6, 7, 8, 12, 13, 14], [3, 4, 5, 9, 10, 11]]
    assert [len(ShardedSampler(15, shuffle=False, rank=r, world_size=2, group=3)) for r in range(2)] == [9, 6]
    shuffled = list(ShardedSampler(12, shuffle=True, seed=3, group=4, even=True))
    assert sorted(shuffled) == list(range(12)) and all(shuffled[i] % 4 == i % 4 for i in range(12))
    with pytest.raises(ValueError, match="10 items do not come in groups of 3"):
        ShardedSampler(10, shuffle=False, group=3)
