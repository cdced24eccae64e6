"""Closed-loop harness on Meta-World: a scripted expert stands in for the VLA, a method schedules its calls.

At every control step the method decides; when it calls "the model", the task's scripted expert policy
(``metaworld.policies``) is evaluated on the current, optionally noisy, observation; otherwise the
method's own cheap action (extrapolation, repeat) is executed. Everything but the scheduling is held
fixed, so differences in success come from the schedule alone.

Units: Meta-World actions are ``[dx, dy, dz, grab]`` in [-1, 1] (the env scales xyz by 1/100 m per step
for its mocap target; grab is the gripper effort). The scheduler sees them as 7-vectors
``[dx, dy, dz, 0, 0, 0, grab]`` in the same units (action units per step). Observations are Meta-World's
39-vector (positions in m, quaternions, goal position in m).

Determinism: an episode is fixed by (task, seed): the env is built with ``seed`` (object and goal
placement), and the noise streams come from ``SeedSequence([seed, crc32(task)])``, drawn at every step
whatever the method does, so every method sees the same noise at the same step.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from spvla_ros.core.scheduler_config import ACTION_DIM
from spvla_ros.eval.methods import ScheduleMethod

ENV_ACTION_DIM = 4
ENV_ACTION_LOW = -1.0
ENV_ACTION_HIGH = 1.0
ENV_MAX_PATH_LENGTH = 500
"""Meta-World's own episode limit, steps."""
GRIPPER_INDEX = ACTION_DIM - 1


@dataclass(frozen=True)
class HarnessConfig:
    """Episode settings shared by all methods of a run.

    Args:
        max_steps: episode limit in control steps, in [1, 500] (Meta-World's own limit is 500).
        obs_noise_std: std of Gaussian noise added to every entry of the observation the expert sees
            (positions in m), >= 0.
        action_noise_std: std of Gaussian noise added to the executed action before the env clips it
            (action units), >= 0. The scheduler records the noise-free action it chose.
        stop_on_success: end the episode at the first step the env reports success.
    """

    max_steps: int = ENV_MAX_PATH_LENGTH
    obs_noise_std: float = 0.0
    action_noise_std: float = 0.0
    stop_on_success: bool = True

    def __post_init__(self) -> None:
        m = self.max_steps
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= ENV_MAX_PATH_LENGTH:
            raise ValueError(f"max_steps must be an int in [1, {ENV_MAX_PATH_LENGTH}], got {m!r}")
        for name in ("obs_noise_std", "action_noise_std"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")


@dataclass(frozen=True, slots=True)
class EpisodeResult:
    """One closed-loop episode.

    Attributes:
        task, seed, method: what ran.
        success: the env reported success at some step.
        steps: control steps executed.
        model_calls: steps at which the model (expert) was called.
        longest_open_loop: longest run of consecutive steps without a model call.
        model_actions: (model_calls, 7) model outputs in call order, or None when not recorded.
    """

    task: str
    seed: int
    method: str
    success: bool
    steps: int
    model_calls: int
    longest_open_loop: int
    model_actions: np.ndarray | None = None


def env_to_scheduler_action(action: np.ndarray) -> np.ndarray:
    """Meta-World ``[dx, dy, dz, grab]`` (4,) -> scheduler ``[dx, dy, dz, 0, 0, 0, grab]`` (7,)."""
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (ENV_ACTION_DIM,):
        raise ValueError(f"Meta-World action must have shape ({ENV_ACTION_DIM},), got {action.shape}")
    out = np.zeros(ACTION_DIM, dtype=np.float64)
    out[:3] = action[:3]
    out[GRIPPER_INDEX] = action[3]
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


class TaskEpisode:
    """The env and expert of one (task, seed); reset between methods so all start from the same state."""

    def __init__(self, task: str, seed: int) -> None:
        env_dict, policies = _import_metaworld()
        check_tasks([task])
        self.task = task
        self.seed = int(seed)
        self.env = env_dict.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{task}-goal-observable"](seed=self.seed)
        self.expert = policies.ENV_POLICY_MAP[task]()

    def close(self) -> None:
        self.env.close()

    def noise_rng(self) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, zlib.crc32(self.task.encode())]))

    def run(
        self, method: ScheduleMethod, method_name: str, config: HarnessConfig, record_actions: bool = False
    ) -> EpisodeResult:
        """Run one episode of ``method`` from the (task, seed) start state."""
        rng = self.noise_rng()
        obs, _ = self.env.reset()
        method.reset()
        success = False
        steps = calls = open_loop = longest = 0
        recorded: list[np.ndarray] = []
        with warnings.catch_warnings():
            # Meta-World's experts warn when their gain saturates the [-1, 1] action box; that is expected.
            warnings.simplefilter("ignore")
            for _ in range(config.max_steps):
                obs_noise = rng.normal(0.0, config.obs_noise_std, size=obs.shape) if config.obs_noise_std else 0.0
                act_noise = (
                    rng.normal(0.0, config.action_noise_std, size=ENV_ACTION_DIM) if config.action_noise_std else 0.0
                )
                seen = obs + obs_noise

                def call_model(seen: np.ndarray = seen) -> np.ndarray:
                    expert = np.clip(self.expert.get_action(seen), ENV_ACTION_LOW, ENV_ACTION_HIGH)
                    return env_to_scheduler_action(expert)

                action, called = method.step(call_model)
                if called:
                    calls += 1
                    open_loop = 0
                    if record_actions:
                        recorded.append(np.asarray(action, dtype=np.float64).copy())
                else:
                    open_loop += 1
                    longest = max(longest, open_loop)
                env_action = np.clip(scheduler_to_env_action(action) + act_noise, ENV_ACTION_LOW, ENV_ACTION_HIGH)
                obs, _, _, truncated, info = self.env.step(env_action)
                steps += 1
                if info.get("success"):
                    success = True
                    if config.stop_on_success:
                        break
                if truncated:
                    break
        actions = np.array(recorded).reshape(-1, ACTION_DIM) if record_actions else None
        return EpisodeResult(self.task, self.seed, method_name, success, steps, calls, longest, actions)


MethodFactory = Callable[[], ScheduleMethod]


def run_suite(
    tasks: Sequence[str],
    seeds: Sequence[int],
    methods: dict[str, MethodFactory],
    config: HarnessConfig,
    record_actions: bool = False,
) -> list[EpisodeResult]:
    """Every method on every (task, seed); each (task, seed) env is built once and shared by the methods."""
    tasks = check_tasks(tasks)
    results = []
    for task in tasks:
        for seed in seeds:
            episode = TaskEpisode(task, seed)
            try:
                for name, factory in methods.items():
                    results.append(episode.run(factory(), name, config, record_actions))
            finally:
                episode.close()
    return results
