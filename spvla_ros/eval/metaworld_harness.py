"""Closed-loop harness on Meta-World: a learned chunking policy is the VLA, a method schedules its calls.

Timing (in control steps; one Meta-World step is ``env.dt`` = 12.5 ms of simulated time): a chunk requested at
step ``t`` is predicted from the observation at ``t`` and *arrives* at ``t + d`` (``d`` = inference delay in
steps, :attr:`HarnessConfig` is per run). The robot never pauses: until the chunk arrives the method executes
what it already has. A chunk's row ``i`` is the action for step ``stamp + i``; every method reads the row for
the current step (latency compensation by the image stamp), as the scheduler node does. A step with no usable
action *waits*: zero translation, gripper held (the scheduler node's zero-velocity step).

Per step, for every episode of a batch in lockstep: (1) chunks due at this step arrive; (2) the method says
whether it requests a chunk from this step's observation; (3) all requests of the batch are predicted in one
policy call (with ``d = 0`` they arrive at once); (4) the method picks the action; (5) the env steps.

Units: Meta-World actions are ``[dx, dy, dz, grab]`` in [-1, 1] (the env moves its mocap target by
``action_scale`` = 1 cm per unit per step; grab is the gripper effort). Methods and the SP-VLA scheduler see
7-vectors ``[dx, dy, dz, 0, 0, 0, grab]`` in the same units. Observations are Meta-World's 39-vector.

Determinism: an episode is fixed by (task, seed): the env start state by ``seed``; the observation/action noise
streams by ``SeedSequence([seed, crc32(task)])``, drawn at every step whatever the method does; the DDIM start
noise of a request by ``(seed, crc32(task), step)``, so two methods requesting at the same step of the same
episode get the same noise (common random numbers for paired comparisons).
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from spvla_ros.core.scheduler_config import ACTION_DIM
from spvla_ros.eval.bc_policy import ENV_ACTION_DIM, ChunkPolicy
from spvla_ros.eval.methods import ChunkMethod, ChunkStore

ENV_ACTION_LOW = -1.0
ENV_ACTION_HIGH = 1.0
ENV_MAX_PATH_LENGTH = 500
"""Meta-World's own episode limit, steps."""
GRIPPER_INDEX = ACTION_DIM - 1
OPEN_GRIPPER = -1.0
"""Meta-World grab effort of an open hand (the gripper value a wait holds before any action)."""


@dataclass(frozen=True)
class HarnessConfig:
    """Episode settings shared by all methods of a run.

    Args:
        max_steps: episode limit in control steps, in [1, 500] (Meta-World's own limit is 500).
        obs_noise_std: std of Gaussian noise added to every entry of the observation the policy sees
            (positions in m), >= 0.
        action_noise_std: std of Gaussian noise added to the executed action before the env clips it
            (action units), >= 0. Jerk is measured on the commanded (noise-free) action.
        drift_std: stationary std of a temporally correlated disturbance added to the executed xyz (action
            units per step), >= 0: an AR(1) process ``b_t = rho b_{t-1} + drift_std sqrt(1 - rho^2) e_t`` per axis,
            the kind of tracking error or external push a plan made open loop cannot see.
        drift_correlation: ``rho`` of the drift per step, in [0, 1) (0.95: correlation time ~20 steps = 0.25 s).
        stop_on_success: end the episode at the first step the env reports success.
    """

    max_steps: int = 200
    obs_noise_std: float = 0.0
    action_noise_std: float = 0.0
    drift_std: float = 0.0
    drift_correlation: float = 0.95
    stop_on_success: bool = True

    def __post_init__(self) -> None:
        m = self.max_steps
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= ENV_MAX_PATH_LENGTH:
            raise ValueError(f"max_steps must be an int in [1, {ENV_MAX_PATH_LENGTH}], got {m!r}")
        for name in ("obs_noise_std", "action_noise_std", "drift_std"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        rho = self.drift_correlation
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0.0 <= rho < 1.0:
            raise ValueError(f"drift_correlation must be in [0, 1), got {rho!r}")


@dataclass(frozen=True, slots=True)
class EpisodeResult:
    """One closed-loop episode.

    Attributes:
        task, seed, method: what ran.
        delay_steps: inference delay d of the run, steps.
        success: the env reported success at some step.
        steps: control steps executed.
        model_calls: chunks requested (policy calls).
        wait_steps: steps with no usable action (zero translation).
        longest_open_loop: longest run of consecutive steps without a request.
        peak_jerk: largest ``||a_t - 2 a_{t-1} + a_{t-2}||`` of the commanded xyz action, action units per
            step^3 (0 for episodes shorter than 3 steps); multiply by ``jerk_scale`` for m/s^3.
        jerk_scale: ``action_scale / dt^3`` of the env, (m/s^3) per (action unit/step^3).
    """

    task: str
    seed: int
    method: str
    delay_steps: int
    success: bool
    steps: int
    model_calls: int
    wait_steps: int
    longest_open_loop: int
    peak_jerk: float
    jerk_scale: float


def env_to_scheduler_actions(actions: np.ndarray) -> np.ndarray:
    """Meta-World ``[dx, dy, dz, grab]`` (..., 4) -> scheduler ``[dx, dy, dz, 0, 0, 0, grab]`` (..., 7)."""
    actions = np.asarray(actions, dtype=np.float64)
    if actions.shape[-1] != ENV_ACTION_DIM:
        raise ValueError(f"Meta-World actions must end in {ENV_ACTION_DIM}, got shape {actions.shape}")
    out = np.zeros((*actions.shape[:-1], ACTION_DIM), dtype=np.float64)
    out[..., :3] = actions[..., :3]
    out[..., GRIPPER_INDEX] = actions[..., 3]
    return out


def scheduler_to_env_action(action: np.ndarray) -> np.ndarray:
    """Scheduler (7,) -> Meta-World (4,), clipped to the env's action box. Rotation is dropped (none in MW)."""
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (ACTION_DIM,):
        raise ValueError(f"scheduler action must have shape ({ACTION_DIM},), got {action.shape}")
    out = np.array([action[0], action[1], action[2], action[GRIPPER_INDEX]])
    return np.clip(out, ENV_ACTION_LOW, ENV_ACTION_HIGH)


def _import_metaworld():  # noqa: ANN202 - module objects
    try:
        import metaworld.env_dict as env_dict
        import metaworld.policies as policies
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "Meta-World is not installed: `pip install -r requirements/main-metaworld.txt` (or `make setup`)"
        ) from exc
    return env_dict, policies


def available_tasks() -> list[str]:
    """Meta-World v3 task names that have a scripted expert, e.g. ``reach-v3``."""
    env_dict, policies = _import_metaworld()
    return sorted(set(policies.ENV_POLICY_MAP) & set(env_dict.ALL_V3_ENVIRONMENTS))


def check_tasks(tasks: Iterable[str]) -> list[str]:
    """The tasks as a list, or ValueError naming the unknown ones."""
    tasks = list(tasks)
    known = set(available_tasks())
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise ValueError(f"unknown Meta-World task(s) {unknown}; known: {sorted(known)}")
    if not tasks:
        raise ValueError("no task given")
    return tasks


def make_env(task: str, seed: int):  # noqa: ANN201 - a Meta-World env
    """The goal-observable Meta-World env of ``task`` with its start state fixed by ``seed``."""
    env_dict, _ = _import_metaworld()
    check_tasks([task])
    return env_dict.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{task}-goal-observable"](seed=int(seed))


def reseed_env(env, seed: int) -> None:  # noqa: ANN001 - a Meta-World env
    """Give an existing env the start state a fresh ``make_env(task, seed)`` would have (20x cheaper than
    building one). Repeats what Meta-World's goal-observable constructor does after ``__init__`` (draw the
    frozen random vector from the global numpy seed, then seed the env's own generator); the global numpy state
    is restored. ``test_reseeded_env_equals_a_fresh_one`` pins the equivalence."""
    state = np.random.get_state()
    try:
        np.random.seed(int(seed))
        env._freeze_rand_vec = False  # noqa: SLF001 - Meta-World has no public reseed
        env.reset()
        env._freeze_rand_vec = True  # noqa: SLF001
        env.seed(int(seed))
    finally:
        np.random.set_state(state)


def expert_for(task: str):  # noqa: ANN201 - a Meta-World scripted policy
    """Meta-World's scripted expert of ``task`` (the demonstrator)."""
    _, policies = _import_metaworld()
    check_tasks([task])
    return policies.ENV_POLICY_MAP[task]()


def noise_rng(task: str, seed: int) -> np.random.Generator:
    """The per-episode observation/action noise stream."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(task.encode())]))


def request_noise(task: str, seed: int, step: int, shape: tuple[int, int]) -> np.ndarray:
    """DDIM start noise of the request at ``step`` of episode (task, seed), ``shape`` float32."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(task.encode()), int(step)]))
    return rng.standard_normal(shape).astype(np.float32)


def ar1_step(state: np.ndarray, std: float, rho: float, rng: np.random.Generator) -> np.ndarray:
    """One step of a stationary AR(1) process per entry: ``rho * state + std * sqrt(1 - rho^2) * N(0, 1)``."""
    return rho * state + std * math.sqrt(1.0 - rho * rho) * rng.normal(size=state.shape)


def jerk_scale(env) -> float:  # noqa: ANN001 - a Meta-World env
    """(m/s^3) per (action unit / step^3): the env moves ``action_scale`` m per unit per step of ``dt`` s."""
    return float(env.action_scale) / float(env.dt) ** 3


@dataclass
class _Episode:
    """Per-episode state of a lockstep batch."""

    seed: int
    env: object
    method: ChunkMethod
    store: ChunkStore
    rng: np.random.Generator
    obs: np.ndarray
    arrivals: dict[int, tuple[int, np.ndarray]]
    commanded: list[np.ndarray]
    drift: np.ndarray
    gripper: float = OPEN_GRIPPER
    steps: int = 0
    calls: int = 0
    waits: int = 0
    open_loop: int = 0
    longest: int = 0
    success: bool = False
    done: bool = False


def run_batch(
    policy: ChunkPolicy,
    task: str,
    envs: Sequence[object],
    seeds: Sequence[int],
    method_name: str,
    make_method: Callable[[], ChunkMethod],
    delay_steps: int,
    config: HarnessConfig,
) -> list[EpisodeResult]:
    """Run one method on ``task`` for every seed at once, lockstep.

    Args:
        policy: the chunk policy ("the VLA").
        task: Meta-World task name (one the policy knows).
        envs: one env per seed, built by ``make_env(task, seed)`` (or reseeded with :func:`reseed_env`); reused
            across calls: a Meta-World reset restores the same start state whatever ran before.
        seeds: episode seeds.
        method_name: label of the results.
        make_method: builds a fresh method per episode.
        delay_steps: inference delay d >= 0, steps.
        config: episode settings.
    """
    if isinstance(delay_steps, bool) or not isinstance(delay_steps, int) or delay_steps < 0:
        raise ValueError(f"delay_steps must be an int >= 0, got {delay_steps!r}")
    if len(envs) != len(seeds):
        raise ValueError(f"need one env per seed, got {len(envs)} envs for {len(seeds)} seeds")
    task_index = policy.task_index(task)
    episodes = []
    for env, seed in zip(envs, seeds, strict=True):
        obs, _ = env.reset()
        method = make_method()
        method.reset()
        episodes.append(_Episode(int(seed), env, method, ChunkStore(), noise_rng(task, seed), obs, {}, [],
                                 np.zeros(3)))
    shape = policy.noise_shape()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Meta-World warns about its own internals (gym API, clipping)
        for t in range(config.max_steps):
            live = [e for e in episodes if not e.done]
            if not live:
                break
            seen = {}
            for e in live:
                noise = e.rng.normal(0.0, config.obs_noise_std, size=e.obs.shape) if config.obs_noise_std else 0.0
                seen[id(e)] = e.obs + noise
                if t in e.arrivals:
                    stamp, rows = e.arrivals.pop(t)
                    e.store.add(stamp, rows)
                    e.method.on_chunk(t, e.store)
            asking = [e for e in live if e.method.plan(t, e.store)]
            if asking:
                chunks = policy.predict(
                    np.stack([seen[id(e)] for e in asking]),
                    np.full(len(asking), task_index),
                    np.stack([request_noise(task, e.seed, t, shape) for e in asking]),
                )
                for e, chunk in zip(asking, env_to_scheduler_actions(chunks), strict=True):
                    e.calls += 1
                    if delay_steps == 0:
                        e.store.add(t, chunk)
                        e.method.on_chunk(t, e.store)
                    else:
                        e.arrivals[t + delay_steps] = (t, chunk)
            for e in live:
                _step_episode(e, e in asking, config)
    scale = jerk_scale(episodes[0].env)
    return [
        EpisodeResult(task, e.seed, method_name, delay_steps, e.success, e.steps, e.calls, e.waits, e.longest,
                      _peak_jerk(e.commanded), scale)
        for e in episodes
    ]


def _step_episode(e: _Episode, requested: bool, config: HarnessConfig) -> None:
    t = e.steps
    action = e.method.act(t, e.store)
    if action is None:
        e.waits += 1
        command = np.array([0.0, 0.0, 0.0, e.gripper])
    else:
        command = scheduler_to_env_action(action)
        e.gripper = float(command[3])
    e.commanded.append(command[:3].copy())
    disturbance = np.zeros(ENV_ACTION_DIM)
    if config.action_noise_std:
        disturbance += e.rng.normal(0.0, config.action_noise_std, size=ENV_ACTION_DIM)
    if config.drift_std:
        e.drift = ar1_step(e.drift, config.drift_std, config.drift_correlation, e.rng)
        disturbance[:3] += e.drift
    e.obs, _, _, truncated, info = e.env.step(np.clip(command + disturbance, ENV_ACTION_LOW, ENV_ACTION_HIGH))
    e.steps += 1
    e.open_loop = 0 if requested else e.open_loop + 1
    e.longest = max(e.longest, e.open_loop)
    if info.get("success"):
        e.success = True
        if config.stop_on_success:
            e.done = True
    if truncated:
        e.done = True


def _peak_jerk(commanded: list[np.ndarray]) -> float:
    if len(commanded) < 3:
        return 0.0
    xyz = np.asarray(commanded)
    jerk = xyz[2:] - 2.0 * xyz[1:-1] + xyz[:-2]
    return float(np.sqrt(np.einsum("ij,ij->i", jerk, jerk)).max())
