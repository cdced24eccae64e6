"""Franka Hand command logic: hysteresis on the model's gripper value so a noisy value never chatters.

The model's gripper dimension is continuous (1 = open in CogACT's datasets). It is binarized at
``threshold`` with a dead band of +-``band``: the hand switches to *closed* only when the value drops below
``threshold - band`` and back to *open* only above ``threshold + band``, and never sooner than
``min_dwell_s`` after the previous switch. A command is emitted only on a change of state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from spvla_ros.core.validation import require_finite_fields


class GripperState(str, Enum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class GripperConfig:
    """Gripper hysteresis and Franka Hand command parameters.

    Args:
        threshold: model value separating closed (below) from open (above), in model units (CogACT: 0..1).
        band: half-width of the dead band around ``threshold``, >= 0.
        min_dwell_s: minimum time between two switches [s], >= 0.
        open_value_is_high: True when a high model value means open (CogACT), False when it means closed.
        open_width_m: Franka Hand width for *open* [m], in (0, 0.08].
        grasp_width_m: expected object width for a grasp [m], >= 0.
        speed_mps: finger speed [m/s], in (0, 0.1].
        force_n: grasp force [N], in (0, 70].
        epsilon_inner_m: grasp tolerance below ``grasp_width_m`` [m].
        epsilon_outer_m: grasp tolerance above ``grasp_width_m`` [m].
        action_timeout_s: a gripper action that does not finish within this time is reported failed [s].
    """

    threshold: float = 0.5
    band: float = 0.1
    min_dwell_s: float = 0.5
    open_value_is_high: bool = True
    open_width_m: float = 0.08
    grasp_width_m: float = 0.0
    speed_mps: float = 0.1
    force_n: float = 20.0
    epsilon_inner_m: float = 0.005
    epsilon_outer_m: float = 0.08
    action_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        require_finite_fields(
            self,
            ("threshold", "band", "min_dwell_s", "open_width_m", "grasp_width_m", "speed_mps", "force_n",
             "epsilon_inner_m", "epsilon_outer_m", "action_timeout_s"),
        )
        if self.band < 0 or self.min_dwell_s < 0 or self.grasp_width_m < 0:
            raise ValueError("band, min_dwell_s and grasp_width_m must be >= 0")
        if not 0 < self.open_width_m <= 0.08:
            raise ValueError(f"open_width_m must be in (0, 0.08] (Franka Hand), got {self.open_width_m}")
        if not 0 < self.speed_mps <= 0.1:
            raise ValueError(f"speed_mps must be in (0, 0.1] (Franka Hand), got {self.speed_mps}")
        if not 0 < self.force_n <= 70:
            raise ValueError(f"force_n must be in (0, 70] (Franka Hand), got {self.force_n}")
        if self.action_timeout_s <= 0:
            raise ValueError(f"action_timeout_s must be > 0, got {self.action_timeout_s}")


class GripperHysteresis:
    """Turns a stream of model gripper values into open/close commands, on state changes only."""

    def __init__(self, config: GripperConfig | None = None, initial: GripperState | None = None) -> None:
        self.config = config or GripperConfig()
        self.state = initial
        self._last_switch_s = -math.inf
        self.ignored_values = 0

    def reset(self, initial: GripperState | None = None) -> None:
        """Forget the state (e.g. new episode); the next decisive value emits a command."""
        self.state = initial
        self._last_switch_s = -math.inf

    def update(self, value: float, now_s: float) -> GripperState | None:
        """Feed one model gripper value at time ``now_s`` [s]; returns the new state on a switch, else None.

        NaN/Inf values are ignored (counted in ``ignored_values``): they never move the hand.
        """
        if not math.isfinite(value):
            self.ignored_values += 1
            return None
        c = self.config
        high = value > c.threshold + c.band
        low = value < c.threshold - c.band
        if not (high or low):
            return None  # inside the dead band: keep the state
        wanted_open = high if c.open_value_is_high else low
        wanted = GripperState.OPEN if wanted_open else GripperState.CLOSED
        if wanted == self.state:
            return None
        if self.state is not None and now_s - self._last_switch_s < c.min_dwell_s:
            return None
        self.state = wanted
        self._last_switch_s = now_s
        return wanted
