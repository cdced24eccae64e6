"""Test double of ``spvla_ros.core.policy.CogACTPolicy`` (LeRobot style): known actions of the right shape.

Row j of every chunk is ``base + j * ramp``, so a test can tell which row the scheduler executed. It
records the calls it got (image shape, instruction, keep ratio) and can sleep to mimic model latency.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

CHUNK_ROWS = 16


@dataclass
class FakeOutput:
    actions: np.ndarray
    keep_ratio: float
    num_vision_tokens: int
    latency_s: float
    stage_ms: dict = field(default_factory=dict)


class FakePolicy:
    def __init__(self, base=(0.02, 0.02, 0.02, 0.0, 0.0, 0.01, 1.0), ramp=0.001, latency_s=0.0,
                 action_rate_hz=5.0):
        self.base = np.asarray(base, dtype=np.float64)
        self.ramp = ramp
        self.latency_s = latency_s
        self.action_rate_hz = action_rate_hz
        self.calls: list[tuple[tuple[int, ...], str, float]] = []
        self.resets = 0
        self.pruning_config = None  # the node sets its PruningConfig here (unused by the fake)

    def predict_chunk(self, image: np.ndarray, instruction: str, keep_ratio: float = 1.0) -> FakeOutput:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        self.calls.append((image.shape, instruction, keep_ratio))
        if self.latency_s:
            time.sleep(self.latency_s)
        rows = self.base + self.ramp * np.arange(CHUNK_ROWS)[:, None] * np.r_[np.ones(3), np.zeros(4)]
        return FakeOutput(rows, keep_ratio, int(256 * keep_ratio), self.latency_s)

    def reset(self) -> None:
        self.resets += 1
