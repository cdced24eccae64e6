"""Named scheduling modes: sets of :class:`SchedulerConfig` overrides on top of the paper's rule.

A mode fixes *how* the scheduler decides (which test, which history, which extrapolator, which gates);
the deployment fixes the scale (``speed_range``, ``action_rate_hz``). ``config/scheduler_modes.yaml``
holds the modes and the default one (chosen by ``spvla-bench closed-loop``); ``paper`` is ``{}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from spvla_ros.core.config_io import CONFIG_DIR, dataclass_from_yaml
from spvla_ros.core.scheduler_config import SchedulerConfig

MODES_FILE = CONFIG_DIR / "scheduler_modes.yaml"
SCHEDULER_FILE = CONFIG_DIR / "scheduler.yaml"
PAPER_MODE = "paper"
DEPLOYMENT_FIELDS = ("speed_range", "action_rate_hz")
"""Set by the deployment, never by a mode."""


@dataclass(frozen=True)
class SchedulerModes:
    """The modes of ``scheduler_modes.yaml``.

    Args:
        default: name of the default mode (one of ``modes``).
        modes: mode name -> SchedulerConfig field overrides (``paper`` must be present and empty).
        base: the config every mode starts from (the paper's rule, ``config/scheduler.yaml``).
    """

    default: str
    modes: Mapping[str, Mapping[str, object]]
    base: SchedulerConfig

    def __post_init__(self) -> None:
        if PAPER_MODE not in self.modes or dict(self.modes[PAPER_MODE]):
            raise ValueError(f"modes must hold {PAPER_MODE!r} with no overrides (the paper's rule)")
        if self.default not in self.modes:
            raise ValueError(f"default mode {self.default!r} is not one of {sorted(self.modes)}")
        for name, overrides in self.modes.items():
            fixed = sorted(set(overrides) & set(DEPLOYMENT_FIELDS))
            if fixed:
                raise ValueError(f"mode {name!r} sets {fixed}: those come from the deployment, not a mode")
            self.config(name)  # validates names and values

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.modes)

    def overrides(self, name: str) -> dict[str, object]:
        """The SchedulerConfig overrides of mode ``name`` (ValueError for an unknown mode)."""
        if name not in self.modes:
            raise ValueError(f"unknown scheduler mode {name!r}; choose one of {sorted(self.modes)}")
        return dict(self.modes[name])

    def config(self, name: str, speed_range: float | None = None, action_rate_hz: float | None = None,
               ) -> SchedulerConfig:
        """The full config of mode ``name`` at this deployment's scale.

        Args:
            name: a mode name.
            speed_range: top of the speed range [action units/step]; ``None`` keeps the base's.
            action_rate_hz: action steps per second; ``None`` keeps the base's.

        Raises:
            ValueError: unknown mode, or overrides that do not make a valid config.
        """
        overrides = self.overrides(name)
        deployment = {k: v for k, v in (("speed_range", speed_range), ("action_rate_hz", action_rate_hz))
                      if v is not None}
        try:
            return self.base.with_changes(**deployment, **overrides)
        except TypeError as exc:  # unknown field
            known = sorted(f.name for f in fields(SchedulerConfig) if f.init)
            raise ValueError(f"mode {name!r}: {exc} (fields: {known})") from exc


def load_scheduler_modes(path: str | Path = MODES_FILE, base_path: str | Path = SCHEDULER_FILE) -> SchedulerModes:
    """Read the modes YAML (``default``, ``modes``) over the base scheduler YAML."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict) or set(data) - {"default", "modes"}:
        raise ValueError(f"{path}: expected a mapping with keys 'default' and 'modes'")
    modes = data.get("modes") or {}
    if not isinstance(modes, dict) or not all(isinstance(v, dict) or v is None for v in modes.values()):
        raise ValueError(f"{path}: 'modes' must map names to override mappings")
    return SchedulerModes(
        default=str(data.get("default", PAPER_MODE)),
        modes={name: dict(v or {}) for name, v in modes.items()},
        base=dataclass_from_yaml(SchedulerConfig, base_path),
    )
