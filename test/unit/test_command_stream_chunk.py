"""CommandStream with ``extrapolator: chunk`` (issue 18): extrapolated steps execute the newest chunk's row for
their time (latency-compensated by the image stamp, resampled at another rate), a live switch to ``chunk`` uses
the chunk already held, and every other cheap path ignores the chunk (no rclpy).

Regressions pinned: cheap steps ignoring the model's own plan; the plan read by arrival time instead of the image
stamp; a mode switch leaving the chunk cheap path empty until the next chunk.
"""

from __future__ import annotations

import numpy as np
import pytest

from spvla_ros.core.command_stream import NS_PER_S, CommandStream, StreamConfig, make_chunk, resample_rows
from spvla_ros.core.scheduler_config import SchedulerConfig

T0 = 1000 * NS_PER_S
STEP = NS_PER_S // 5  # 5 Hz
CHUNK_MODE = SchedulerConfig(extrapolator="chunk", buffer_size=2, tau=0.0, v_min=0.0, v_max=10.0,
                             intuitive_test="norm", fit_history="model", max_consecutive_extrapolations=4)


def _plan(rows: int = 16, rate: float = 5.0) -> np.ndarray:
    """A curved plan: x grows, y turns, so a linear trend of the first rows mispredicts the later ones."""
    i = np.arange(rows)
    actions = np.zeros((rows, 7))
    actions[:, 0] = 0.01 + 0.002 * i
    actions[:, 1] = 0.02 * np.sin(i / 3.0)
    actions[:, 6] = 1.0
    return actions


def _drive(stream: CommandStream, steps: int, frame_lag_ns: int = 0, rate: float = 5.0):
    """Advance step by step; answer each request with the plan predicted from a frame ``frame_lag_ns`` old."""
    reports, chunks = [], {}
    for j in range(steps + 1):
        out = stream.advance_to(T0 + j * STEP)
        reports += out.steps
        for r in out.requests:
            chunk = make_chunk(_plan(rate=rate), r.stamp_ns - frame_lag_ns, rate, r.request_id)
            assert stream.on_chunk(chunk) is None
            chunks[r.stamp_ns] = chunk
    return reports, chunks


def _newest_row(chunks: dict, now_ns: int) -> np.ndarray:
    stamp = max(s for s in chunks if s < now_ns)  # answered right after the request: in use from the next step
    chunk = chunks[stamp]
    return chunk.actions[round((now_ns - chunk.image_stamp_ns) * chunk.action_rate_hz / NS_PER_S)]


@pytest.mark.parametrize("frame_lag_ns", [0, 70_000_000])
def test_cheap_steps_execute_the_newest_chunk_row_for_their_time(frame_lag_ns: int) -> None:
    stream = CommandStream(CHUNK_MODE, StreamConfig())
    reports, chunks = _drive(stream, 30, frame_lag_ns)
    cheap = [r for r in reports if r.decision == "extrapolate"]
    assert len(cheap) >= 15 and stream.counters.requests_sent < 12  # mostly the plan, a call every 5 steps
    for r in cheap:
        np.testing.assert_allclose(r.action, _newest_row(chunks, r.stamp_ns), rtol=0, atol=1e-15)


def test_a_history_extrapolator_ignores_the_chunk_on_cheap_steps() -> None:
    stream = CommandStream(CHUNK_MODE.with_changes(extrapolator="linear"), StreamConfig())
    reports, chunks = _drive(stream, 30)
    cheap = [r for r in reports if r.decision == "extrapolate"]
    assert cheap and any(not np.allclose(r.action, _newest_row(chunks, r.stamp_ns)) for r in cheap)


def test_a_live_switch_to_chunk_uses_the_chunk_already_held() -> None:
    stream = CommandStream(CHUNK_MODE.with_changes(extrapolator="linear"), StreamConfig())
    _, chunks = _drive(stream, 6)
    held = stream.last_chunk
    stream.reconfigure(CHUNK_MODE)  # no new chunk arrives before the next steps
    for j in range(7, 10):
        (report,) = stream.advance_to(T0 + j * STEP).steps
        if report.decision == "extrapolate":
            row = round((T0 + j * STEP - held.image_stamp_ns) * 5.0 / NS_PER_S)
            np.testing.assert_allclose(report.action, held.actions[row])
            break
    else:
        pytest.fail("no cheap step after the switch")


def test_a_chunk_at_another_rate_is_offered_resampled_to_stream_steps() -> None:
    stream = CommandStream(CHUNK_MODE, StreamConfig())
    reports, chunks = _drive(stream, 20, rate=15.0)  # 16 rows at 15 Hz: a ~1 s plan, 5 stream steps
    cheap = [r for r in reports if r.decision == "extrapolate"]
    assert cheap
    for r in cheap:
        newest = chunks[max(s for s in chunks if s < r.stamp_ns)]
        np.testing.assert_allclose(r.action, resample_rows(newest, r.stamp_ns, 5.0), rtol=0, atol=1e-15)
