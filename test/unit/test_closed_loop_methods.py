"""Scheduling methods and the delay bookkeeping of the closed-loop harness, on a fake env and a fake policy whose
chunk rows say which step they were predicted for (no simulator, no network): the row executed at every step must
be the row for that step, from the chunk requested ``d`` steps earlier."""

from __future__ import annotations

import numpy as np
import pytest

from spvla_ros.core.policy.ensemble import AdaptiveEnsembler
from spvla_ros.core.scheduler_config import SchedulerConfig
from spvla_ros.eval.metaworld_harness import HarnessConfig, run_batch
from spvla_ros.eval.methods import ChunkStore, Ensemble, EveryStep, FixedChunk, MethodSpec, method_from_dict

CHUNK = 16
SCALE = 1e-3
"""Rows encode steps as x = (step the row is for + 1) * SCALE, y = (request step) * SCALE."""


class FakeEnv:
    """obs[0] is the step count; records the executed actions; never succeeds."""

    action_scale = 0.01
    dt = 0.0125

    def __init__(self) -> None:
        self.executed: list[np.ndarray] = []
        self.t = 0

    def reset(self) -> tuple[np.ndarray, dict]:
        self.t = 0
        self.executed = []
        return self._obs(), {}

    def seed(self, seed: int) -> None:
        pass

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.executed.append(np.asarray(action, dtype=np.float64).copy())
        self.t += 1
        return self._obs(), 0.0, False, False, {"success": False}

    def close(self) -> None:
        pass

    def _obs(self) -> np.ndarray:
        obs = np.zeros(39)
        obs[0] = self.t
        return obs


class FakePolicy:
    """Chunk row i from the observation at step s: [(s + i + 1) * SCALE, s * SCALE, 0, 0.5]."""

    def __init__(self) -> None:
        self.requests: list[int] = []

    def task_index(self, task: str) -> int:
        return 0

    def noise_shape(self) -> tuple[int, int]:
        return (CHUNK, 4)

    def predict(self, obs: np.ndarray, task_index: np.ndarray, noise: np.ndarray) -> np.ndarray:
        out = np.zeros((len(obs), CHUNK, 4))
        for b, o in enumerate(obs):
            s = int(o[0])
            self.requests.append(s)
            out[b, :, 0] = (s + 1 + np.arange(CHUNK)) * SCALE
            out[b, :, 1] = s * SCALE
            out[b, :, 3] = 0.5
        return out


def _run(spec: MethodSpec, delay: int, steps: int = 40, base: SchedulerConfig | None = None):
    env, policy = FakeEnv(), FakePolicy()
    base = base or SchedulerConfig(speed_range=1.0)
    (result,) = run_batch(policy, "fake", [env], [0], spec.name, lambda: spec.build(base), delay,
                          HarnessConfig(max_steps=steps))
    executed = np.array(env.executed)
    return result, executed, policy.requests


def _waits(executed: np.ndarray) -> list[int]:
    return [t for t, a in enumerate(executed) if not a[:3].any()]


@pytest.mark.parametrize("delay", [0, 1, 2, 4])
def test_every_step_executes_the_row_for_this_step_from_the_chunk_requested_d_steps_ago(delay: int) -> None:
    result, executed, requests = _run(MethodSpec("every_step", "every_step"), delay)
    assert requests == list(range(40)) and result.model_calls == 40 and result.delay_steps == delay
    assert _waits(executed) == list(range(delay))  # nothing has arrived yet
    assert result.wait_steps == delay
    for t in range(delay, 40):
        assert executed[t][0] == pytest.approx((t + 1) * SCALE)  # latency-compensated row
        assert executed[t][1] == pytest.approx((t - delay) * SCALE)  # from the request d steps earlier
    assert (executed[:delay, 3] == -1.0).all()  # a wait before any action holds the open gripper


@pytest.mark.parametrize(("k", "delay"), [(4, 0), (4, 2), (16, 0), (16, 2), (8, 4)])
def test_fixed_chunk_requests_every_k_steps_and_waits_only_when_the_rows_run_out(k: int, delay: int) -> None:
    result, executed, requests = _run(MethodSpec(f"k{k}", "fixed_chunk", k=k), delay, steps=48)
    assert requests == list(range(0, 48, k)) and result.model_calls == len(requests)
    expected_waits = [t for t in range(48) if t < delay or t - ((t - delay) // k) * k >= CHUNK]
    assert _waits(executed) == expected_waits
    for t in sorted(set(range(48)) - set(expected_waits)):
        stamp = ((t - delay) // k) * k  # the newest chunk that has arrived
        assert executed[t][0] == pytest.approx((t + 1) * SCALE) and executed[t][1] == pytest.approx(stamp * SCALE)
    assert result.longest_open_loop == k - 1


def test_ensemble_at_delay_zero_equals_cogact_adaptive_ensembler() -> None:
    rng = np.random.default_rng(0)
    chunks = [rng.normal(size=(CHUNK, 7)) for _ in range(10)]
    store, method, reference = ChunkStore(), Ensemble(1, 5, 0.1), AdaptiveEnsembler(5, 0.1)
    for t, chunk in enumerate(chunks):
        store.add(t, chunk)
        np.testing.assert_allclose(method.act(t, store), reference.update(chunk), rtol=1e-12)


def test_ensemble_blends_rows_for_this_step_under_delay_and_requests_every_k() -> None:
    result, executed, requests = _run(MethodSpec("ens", "ensemble", k=2, horizon=3), delay=1, steps=20)
    assert requests == list(range(0, 20, 2))
    for t in range(1, 20):  # every blended row is the row for step t, so x stays exact
        assert executed[t][0] == pytest.approx((t + 1) * SCALE)


def test_chunk_store_rows() -> None:
    store = ChunkStore()
    assert store.row_at(0) is None and len(store.rows_at(0, 3)) == 0
    store.add(2, np.arange(4 * 7, dtype=float).reshape(4, 7))
    store.add(4, 100 + np.arange(4 * 7, dtype=float).reshape(4, 7))
    assert store.row_at(5)[0] == 107.0 and store.row_at(8) is None and store.row_at(3) is None
    np.testing.assert_array_equal(store.newest_from(6), store.newest_from(4)[2:])
    np.testing.assert_array_equal(store.rows_at(5, 3)[:, 0], [21.0, 107.0])  # oldest first; both cover 5
    with pytest.raises(ValueError, match="arrived after"):
        store.add(3, np.zeros((4, 7)))


def test_sp_vla_chunk_mode_executes_chunk_rows_and_calls_at_its_bound() -> None:
    """``extrapolator: chunk`` with the gate off and at most 3 cheap steps: rows of the newest chunk, a request
    every 4 steps once the buffer is full (the scheduler as fixed chunk execution)."""
    spec = MethodSpec("chunk4", "sp_vla", scheduler={
        "extrapolator": "chunk", "max_consecutive_extrapolations": 3, "buffer_size": 2, "tau": 0.0,
        "v_min_fraction": 0.0, "v_max_fraction": 1.0, "intuitive_test": "norm", "fit_history": "model"})
    result, executed, requests = _run(spec, delay=0, steps=30)
    assert requests[:2] == [0, 1] and np.all(np.diff(requests[1:]) == 4)
    for t in range(30):
        assert executed[t][0] == pytest.approx((t + 1) * SCALE)
        assert executed[t][1] == pytest.approx(max(r for r in requests if r <= t) * SCALE)


def test_sp_vla_with_a_history_extrapolator_ignores_chunks_on_cheap_steps() -> None:
    spec = MethodSpec("lin", "sp_vla", scheduler={
        "extrapolator": "linear", "max_consecutive_extrapolations": 2, "buffer_size": 2, "tau": 0.0,
        "v_min_fraction": 0.0, "v_max_fraction": 1.0, "intuitive_test": "norm", "fit_history": "model"})
    result, executed, requests = _run(spec, delay=2, steps=30)
    model_steps = [t for t in range(30) if t in requests]
    assert result.model_calls == len(requests) < 30
    for t in range(2, 30):
        if t in model_steps:  # a model decision executes the newest chunk's row for the step
            assert executed[t][0] == pytest.approx((t + 1) * SCALE)


def test_method_specs_validate_and_read_yaml_form() -> None:
    with pytest.raises(ValueError, match="kind"):
        MethodSpec("x", "fixed_skip")
    with pytest.raises(ValueError, match="k >= 1"):
        MethodSpec("x", "fixed_chunk", k=0)
    with pytest.raises(ValueError, match="horizon"):
        MethodSpec("x", "ensemble", horizon=0)
    with pytest.raises(ValueError, match="unknown scheduler mode"):
        MethodSpec("x", "sp_vla", mode="nope")
    with pytest.raises(ValueError, match="bad scheduler overrides"):
        MethodSpec("x", "sp_vla", scheduler={"no_such_field": 1})
    with pytest.raises(ValueError, match="unknown method keys"):
        method_from_dict({"name": "x", "kind": "every_step", "extra": 1})
    spec = method_from_dict({"name": "e", "kind": "ensemble", "k": 2, "horizon": 3, "alpha": 0.0})
    assert isinstance(spec.build(SchedulerConfig()), Ensemble) and spec.describe()["horizon"] == 3
    assert isinstance(MethodSpec("f", "fixed_chunk", k=3).build(SchedulerConfig()), FixedChunk)
    assert type(MethodSpec("s", "every_step").build(SchedulerConfig())) is EveryStep
