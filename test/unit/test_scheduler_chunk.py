"""The ``chunk`` cheap path of the SP-VLA scheduler: the newest chunk's row for the step, and its surprise (the
plan change a new chunk brings), in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from spvla_ros.core.extrapolation import EXTRAPOLATOR_NAMES, ChunkExtrapolator, make_extrapolator
from spvla_ros.core.scheduler import ActionScheduler, Reason
from spvla_ros.core.scheduler_config import SchedulerConfig

OPEN = {"buffer_size": 2, "tau": 0.0, "v_min_fraction": 0.0, "v_max_fraction": 1.0, "intuitive_test": "norm",
            "fit_history": "model", "speed_range": 1.0, "extrapolator": "chunk"}


def _rows(n: int, x0: float, gripper: float = 0.7) -> np.ndarray:
    rows = np.zeros((n, 7))
    rows[:, 0] = x0 + 0.01 * np.arange(n)
    rows[:, 3] = 0.05  # rotation and gripper come from the chunk, not carried over
    rows[:, 6] = gripper
    return rows


def test_chunk_is_a_known_extrapolator_and_validates_rows() -> None:
    assert "chunk" in EXTRAPOLATOR_NAMES and isinstance(make_extrapolator("chunk", 3, 0.1), ChunkExtrapolator)
    c = ChunkExtrapolator()
    assert c.action_at(0) is None
    with pytest.raises(ValueError, match="shape"):
        c.offer(np.zeros(7), 0)
    with pytest.raises(ValueError, match="NaN"):
        c.offer(np.full((2, 7), np.nan), 0)
    with pytest.raises(TypeError):
        c(np.zeros((3, 3)))


def test_offer_returns_the_plan_change_at_the_offered_step() -> None:
    c = ChunkExtrapolator()
    assert c.offer(_rows(4, 0.1), step=10) is None  # nothing held before
    np.testing.assert_allclose(c.action_at(12), _rows(4, 0.1)[2])
    assert c.action_at(14) is None and c.action_at(9) is None
    # the old chunk held x = 0.12 for step 12; the new one starts at 0.2 there
    assert c.offer(_rows(4, 0.2), step=12) == pytest.approx(0.08)
    assert c.offer(_rows(4, 0.0), step=20) is None  # the previous chunk ended before step 20


def test_scheduler_executes_chunk_rows_with_rotation_and_gripper_and_calls_when_they_run_out() -> None:
    sched = ActionScheduler(SchedulerConfig(max_consecutive_extrapolations=10, **OPEN))
    for _ in range(2):  # fill the buffer with model steps
        assert not sched.decide().extrapolate
        sched.commit(_rows(1, 0.3)[0], from_model=True)
    sched.offer_chunk(_rows(3, 0.5))  # row 0 is for the next step
    for i in range(3):
        assert sched.decide().extrapolate
        action = sched.extrapolate()
        np.testing.assert_allclose(action, _rows(3, 0.5)[i])
        sched.commit(action, from_model=False)
    assert sched.decide().extrapolate and sched.extrapolate() is None  # rows ran out: the caller calls the model
    result = sched.step(lambda: _rows(1, 0.9)[0])
    assert result.from_model and result.reason == Reason.INVALID_EXTRAPOLATION


def test_chunk_translation_is_clipped_to_the_bound() -> None:
    sched = ActionScheduler(SchedulerConfig(clip_bound=0.4, **OPEN))
    for _ in range(2):
        sched.commit(_rows(1, 0.3)[0], from_model=True)
    sched.offer_chunk(_rows(2, 2.0))
    assert sched.extrapolate()[0] == pytest.approx(0.4)


def test_surprise_gate_uses_the_plan_change_of_each_new_chunk() -> None:
    sched = ActionScheduler(SchedulerConfig(max_surprise_fraction=0.05, max_consecutive_extrapolations=10, **OPEN))
    for _ in range(2):
        sched.commit(_rows(1, 0.3)[0], from_model=True)
    sched.offer_chunk(_rows(8, 0.3))
    assert sched.decide().reason == Reason.SURPRISE  # no plan change measured yet
    sched.commit(_rows(8, 0.3)[0], from_model=True)
    sched.offer_chunk(_rows(8, 0.31 + 0.02))  # old row for this step: 0.31; new: 0.33 -> 0.02 <= 0.05
    assert sched.last_surprise == pytest.approx(0.02)
    assert sched.decide().extrapolate
    sched.commit(sched.extrapolate(), from_model=False)
    sched.offer_chunk(_rows(8, 0.6))  # old row: 0.34; new: 0.6 -> 0.26 > 0.05
    assert sched.last_surprise == pytest.approx(0.26)
    assert sched.decide().reason == Reason.SURPRISE
    # a model commit does not overwrite the chunk surprise with the distance to itself
    sched.commit(_rows(8, 0.6)[0], from_model=True)
    assert sched.last_surprise == pytest.approx(0.26)


def test_offer_is_a_no_op_for_history_extrapolators() -> None:
    sched = ActionScheduler(SchedulerConfig(**{**OPEN, "extrapolator": "linear", "max_surprise_fraction": 0.1}))
    sched.offer_chunk(_rows(4, 0.5))
    assert np.isnan(sched.last_surprise)
    for x in (0.1, 0.2):
        sched.commit(_rows(1, x)[0], from_model=True)
    assert sched.extrapolate()[0] == pytest.approx(0.3)  # linear trend, not the chunk
