"""Semantic masks, token selection (union, budget, tie-breaks), feature gathering and position ids."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spvla_ros.core.pruning import (
    PruningConfig,
    apply_token_selection,
    position_ids_for_selection,
    select_for_frame,
    select_tokens,
    selection_priority,
    semantic_mask,
    token_budget,
)

MASS = PruningConfig(semantic_mode="mass", semantic_mass=0.5)
THRESHOLD = PruningConfig(semantic_mode="threshold", t_ks=1.0)


def test_hand_worked_example():
    # shares: 0.3 (1) + 0.2 (3) reach the 0.5 mass -> semantic {1, 3}; spatial {0, 5, 6}; nothing is both.
    # One-cue tier, taking turns: semantic 1 (0.3), spatial 5 (0.1), semantic 3 (0.2), spatial 6 (0.1, the
    # higher index of the tie), spatial 0 (0.05); then the rest by score: 4, 7 (0.1), 2 (0.05).
    scores = np.array([0.05, 0.3, 0.05, 0.2, 0.1, 0.1, 0.1, 0.1])
    spatial = np.array([1, 0, 0, 0, 0, 1, 1, 0], bool)
    np.testing.assert_array_equal(semantic_mask(scores, MASS), [0, 1, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(select_tokens(scores, spatial, 0.5, MASS), [1, 3, 5, 6])
    # budget 6 > union 5: union {0, 1, 3, 5, 6} kept, one filled by score then index: 4 (0.1)
    np.testing.assert_array_equal(select_tokens(scores, spatial, 0.75, MASS), [0, 1, 3, 4, 5, 6])
    # budget 2: the best of each cue
    np.testing.assert_array_equal(select_tokens(scores, spatial, 0.25, MASS), [1, 5])
    np.testing.assert_array_equal(selection_priority(scores, spatial, MASS), [1, 5, 3, 6, 0, 4, 7, 2])


def test_both_tier_comes_first():
    scores = np.array([0.4, 0.3, 0.2, 0.1])
    spatial = np.array([0, 0, 0, 1], bool)
    cfg = PruningConfig(semantic_mode="mass", semantic_mass=1.0)  # every patch is semantic
    # patch 3 is both semantic and spatial: it outranks the higher-scored semantic-only ones
    np.testing.assert_array_equal(select_tokens(scores, spatial, 0.25, cfg), [3])


def test_ties_break_to_lower_index_and_empty_sets_fill_by_score():
    scores = np.full(16, 1 / 16)  # uniform: threshold t_ks=1 selects nothing (share*P == 1, not > 1)
    none = np.zeros(16, bool)
    assert not semantic_mask(scores, THRESHOLD).any()
    np.testing.assert_array_equal(select_tokens(scores, none, 0.25, THRESHOLD), [0, 1, 2, 3])
    # all-zero scores are read as uniform too; still never empty
    np.testing.assert_array_equal(select_tokens(np.zeros(16), none, 1e-6, THRESHOLD), [0])


def test_keep_ratio_one_returns_all():
    scores = np.random.default_rng(0).random(256)
    np.testing.assert_array_equal(select_tokens(scores, np.zeros(256, bool), 1.0, MASS), np.arange(256))


def test_threshold_mode_formula():
    scores = np.array([1.0, 2.0, 3.0, 4.0])  # shares 0.1..0.4, times P=4: 0.4, 0.8, 1.2, 1.6
    np.testing.assert_array_equal(semantic_mask(scores, THRESHOLD), [0, 0, 1, 1])
    np.testing.assert_array_equal(semantic_mask(scores, THRESHOLD.with_changes(t_ks=0.5)), [0, 1, 1, 1])


@pytest.mark.parametrize(
    ("scores", "spatial", "ratio", "message"),
    [
        (np.array([0.1, np.nan, 0.2]), np.zeros(3, bool), 0.5, "NaN"),
        (np.array([0.1, np.inf, 0.2]), np.zeros(3, bool), 0.5, "NaN or Inf"),
        (np.array([0.1, -0.2, 0.2]), np.zeros(3, bool), 0.5, ">= 0"),
        (np.array([]), np.zeros(0, bool), 0.5, "non-empty"),
        (np.ones((2, 3)), np.zeros(6, bool), 0.5, "1-D"),
        (np.ones(3), np.zeros(4, bool), 0.5, "4 patches"),
        (np.ones(3), np.zeros(3, int), 0.5, "bool"),
        (np.ones(3), np.zeros(3, bool), 0.0, "keep_ratio"),
        (np.ones(3), np.zeros(3, bool), float("nan"), "keep_ratio"),
        (np.ones(3), np.zeros(3, bool), 1.5, "keep_ratio"),
        (np.ones(3), np.zeros(3, int), 1.0, "bool"),  # validated even when nothing is pruned
    ],
)
def test_bad_selection_inputs(scores, spatial, ratio, message):
    with pytest.raises(ValueError, match=message):
        select_tokens(scores, spatial, ratio, MASS)


scores_st = hnp.arrays(np.float64, st.integers(1, 300), elements=st.floats(0, 1))


@settings(max_examples=150, deadline=None)
@given(
    scores=scores_st,
    data=st.data(),
    ratio=st.floats(1e-4, 1.0),
    cfg=st.sampled_from([MASS, THRESHOLD, PruningConfig(semantic_mode="mass", semantic_mass=0.9)]),
)
def test_selection_properties(scores, data, ratio, cfg):
    p = scores.size
    spatial = data.draw(hnp.arrays(bool, p))
    keep = select_tokens(scores, spatial, ratio, cfg)
    assert keep.dtype == np.int64
    assert keep.size == token_budget(ratio, p) >= 1
    assert np.all(np.diff(keep) > 0)  # sorted, unique
    assert keep[0] >= 0 and keep[-1] < p
    np.testing.assert_array_equal(keep, select_tokens(scores.copy(), spatial.copy(), ratio, cfg))  # deterministic
    # nested budgets: a larger keep ratio keeps a superset
    bigger = select_tokens(scores, spatial, min(1.0, ratio * 1.5), cfg)
    assert np.isin(keep, bigger).all()
    semantic = semantic_mask(scores, cfg)
    union = semantic | spatial
    kept = np.zeros(p, bool)
    kept[keep] = True
    if union.sum() <= keep.size:
        assert kept[union].all()  # the whole union fits: all of it is kept
    else:
        assert not kept[~union].any()  # the union overflows: nothing outside it is kept
        both = semantic & spatial
        assert kept[both].all() or kept[both].sum() == keep.size  # "both" tier goes first
        if not kept[both].all() or both.sum() == keep.size:
            return
        sem_only, spa_only = kept[semantic & ~spatial].sum(), kept[spatial & ~semantic].sum()
        # the cues take turns: the counts differ by at most 1 unless one cue ran out of patches
        if sem_only < (semantic & ~spatial).sum() and spa_only < (spatial & ~semantic).sum():
            assert sem_only - spa_only in (0, 1)


@settings(max_examples=100, deadline=None)
@given(scores=scores_st, mass=st.floats(0.01, 1.0))
def test_mass_mode_is_the_smallest_top_set(scores, mass):
    cfg = PruningConfig(semantic_mode="mass", semantic_mass=mass)
    mask = semantic_mask(scores, cfg)
    share = scores / scores.sum() if scores.sum() > 0 else np.full(scores.size, 1 / scores.size)
    assert mask.any()
    assert share[mask].sum() >= mass - 1e-9
    if mask.sum() > 1:  # dropping the weakest selected patch falls short of the mass
        assert share[mask].sum() - share[mask].min() < mass + 1e-9
    if (~mask).any():  # every selected patch scores at least as high as every unselected one
        assert share[mask].min() >= share[~mask].max()


def test_apply_token_selection_shared_and_per_sample():
    feats = torch.arange(2 * 6 * 3, dtype=torch.float32).reshape(2, 6, 3)
    idx = np.array([0, 2, 5])
    out = apply_token_selection(feats, idx)
    assert out.shape == (2, 3, 3)
    torch.testing.assert_close(out, feats[:, [0, 2, 5]])
    per_sample = torch.tensor([[0, 1], [4, 5]])
    out2 = apply_token_selection(feats, per_sample)
    torch.testing.assert_close(out2[0], feats[0, [0, 1]])
    torch.testing.assert_close(out2[1], feats[1, [4, 5]])


def test_same_indices_on_concatenated_backbones():
    dino, siglip = torch.randn(1, 256, 384), torch.randn(1, 256, 1152)
    idx = np.array([3, 17, 100, 255])
    fused = apply_token_selection(torch.cat([dino, siglip], dim=-1), idx)
    separate = torch.cat([apply_token_selection(dino, idx), apply_token_selection(siglip, idx)], dim=-1)
    torch.testing.assert_close(fused, separate)


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        (np.array([], dtype=np.int64), "non-empty"),
        (np.array([0, 6]), r"\[0, 6\)"),
        (np.array([-1, 2]), r"\[0, 6\)"),
        (np.array([0.0, 1.0]), "integers"),
        (np.array([True, False]), "integers"),
        (np.zeros((3, 2), np.int64), "B=3"),
    ],
)
def test_apply_token_selection_bad_indices(indices, message):
    with pytest.raises(ValueError, match=message):
        apply_token_selection(torch.zeros(2, 6, 3), indices)


def test_apply_token_selection_bad_features():
    with pytest.raises(ValueError, match=r"\(B, P, D\)"):
        apply_token_selection(torch.zeros(6, 3), np.array([0]))
    with pytest.raises(ValueError, match=r"\(B, P, D\)"):
        apply_token_selection(np.zeros((1, 6, 3)), np.array([0]))


def test_position_ids_modes():
    idx = np.array([2, 5, 9])
    np.testing.assert_array_equal(position_ids_for_selection(idx, "renumber"), [0, 1, 2])
    np.testing.assert_array_equal(position_ids_for_selection(idx, "preserve"), [2, 5, 9])
    np.testing.assert_array_equal(position_ids_for_selection(idx, "renumber", start=1), [1, 2, 3])
    np.testing.assert_array_equal(position_ids_for_selection(idx, "preserve", start=1), [3, 6, 10])
    with pytest.raises(ValueError, match="shift"):
        position_ids_for_selection(idx, "shift")
    with pytest.raises(ValueError, match="non-empty"):
        position_ids_for_selection(np.array([], np.int64), "renumber")


def test_select_for_frame_end_to_end_and_grid_mismatch():
    image = np.zeros((224, 224, 3), np.uint8)
    image[37:121, 51:181] = 255
    scores = np.random.default_rng(1).random(256)
    cfg = PruningConfig(v_pmin=0.2, v_pmax=0.6, min_keep_ratio=0.25, position_ids="preserve")
    slow = select_for_frame(image, scores, 0.0, cfg)
    assert slow.keep_ratio == 1.0 and slow.indices.size == 256
    fast = select_for_frame(image, scores, 10.0, cfg)
    assert fast.keep_ratio == 0.25 and fast.indices.size == 64
    np.testing.assert_array_equal(fast.position_ids, fast.indices)
    assert fast.spatial.shape == (256,) and fast.spatial.sum() == 2 * 10 + 2 * 7 - 4  # rows 2..8, cols 3..12
    with pytest.raises(ValueError, match="257"):
        select_for_frame(image, np.ones(257), 0.0, cfg)
