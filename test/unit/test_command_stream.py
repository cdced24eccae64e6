"""CommandStream: SP-VLA step decisions turned into a twist stream, driven by time only (no rclpy).

Regressions pinned: the wrong chunk row for the step (latency not compensated); a second request
while one is out; extrapolation never or always used; a command over the speed limits; a velocity
jump inside a step; a NaN chunk reaching the stream; non-deterministic output for identical inputs;
stale chunks used forever; reset not restarting the schedule.
"""

from __future__ import annotations

import numpy as np
import pytest

from spvla_ros.core.action_mapping import ActionMappingConfig
from spvla_ros.core.command_stream import (
    NS_PER_S,
    CommandStream,
    StreamConfig,
    make_chunk,
)
from spvla_ros.core.scheduler_config import SchedulerConfig

T0 = 1000 * NS_PER_S
STEP = NS_PER_S // 5  # 5 Hz
PERMISSIVE = SchedulerConfig(v_min=0.0, v_max=10.0, tau=0.0, max_consecutive_extrapolations=3)


def _chunk(stamp_ns, request_id, base=(0.01, 0.02, -0.01, 0.0, 0.0, 0.1, 1.0), rows=16, rate=5.0):
    ramp = np.zeros(7)
    ramp[0] = 0.001
    return make_chunk(np.asarray(base) + np.arange(rows)[:, None] * ramp, stamp_ns, rate, request_id)


def _run(stream, steps, answer=True, chunk_rows=16):
    """Advance step by step; answer every request at once with a chunk predicted at the request time."""
    reports, commands = [], []
    for j in range(steps + 1):
        out = stream.advance_to(T0 + j * STEP)
        reports += out.steps
        commands += out.commands
        for r in out.requests:
            if answer:
                stream.on_chunk(_chunk(r.stamp_ns, r.request_id, rows=chunk_rows))
    return reports, commands


def test_first_step_waits_with_zero_velocity_and_requests_the_model():
    s = CommandStream(PERMISSIVE)
    out = s.advance_to(T0)
    assert [r.decision for r in out.steps] == ["wait"]
    assert len(out.requests) == 1 and out.requests[0].for_step == 1 and out.requests[0].speed == 0.0
    assert np.all(out.commands[0].linear == 0)


def test_model_step_uses_the_chunk_row_for_its_time():
    s = CommandStream(PERMISSIVE)
    s.advance_to(T0)
    s.on_chunk(_chunk(T0, 1))  # image taken at T0 -> row 1 is the action for T0 + 1 step
    out = s.advance_to(T0 + STEP)
    (step,) = out.steps
    assert step.decision == "model" and step.chunk_image_stamp_ns == T0
    np.testing.assert_allclose(step.action, _chunk(T0, 1).actions[1])


def test_commands_at_the_configured_rate_with_exact_stamps():
    s = CommandStream(PERMISSIVE, StreamConfig(command_rate_hz=100.0))
    _, cmds = _run(s, 10)
    stamps = np.array([c.stamp_ns for c in cmds])
    assert len(cmds) == 10 * 20 + 1
    assert set(np.diff(stamps)) == {NS_PER_S // 100}


def test_both_paths_used_and_extrapolations_bounded():
    s = CommandStream(PERMISSIVE)
    reports, _ = _run(s, 30)
    decisions = [r.decision for r in reports]
    assert "model" in decisions and "extrapolate" in decisions
    run = 0
    for d in decisions:
        run = run + 1 if d == "extrapolate" else 0
        assert run <= PERMISSIVE.max_consecutive_extrapolations
    c = s.counters
    assert c.model_steps + c.extrapolated_steps + c.wait_steps == len(reports)
    assert c.requests_sent == c.chunks_received  # one request per model step, answered
    assert c.late_chunk_steps == 0


def test_paper_defaults_send_fast_actions_to_the_model():
    s = CommandStream(SchedulerConfig())  # v_max = 0.75 action units/step; our actions are ~0.02
    reports, _ = _run(s, 15)
    assert {r.decision for r in reports[1:]} == {"model"}


def test_only_one_request_out_and_late_chunks_counted():
    s = CommandStream(PERMISSIVE)
    reports, _ = _run(s, 1)
    out = s.advance_to(T0 + 2 * STEP)  # request for step 2 sent at T0 + STEP... not answered
    out = s.advance_to(T0 + 5 * STEP)
    assert out.requests == []  # still pending, no second request
    assert s.counters.late_chunk_steps >= 1  # the step-1 chunk was reused for later model steps


def test_chunk_too_old_means_wait_and_rerequest_after_timeout():
    s = CommandStream(SchedulerConfig(), StreamConfig(request_timeout_s=0.5))
    s.advance_to(T0)
    s.on_chunk(_chunk(T0, 1, rows=2))
    out = s.advance_to(T0 + 3 * STEP)
    assert [r.decision for r in out.steps] == ["model", "wait", "wait"]
    out = s.advance_to(T0 + 6 * STEP)
    assert len(out.requests) == 1  # the unanswered one timed out after 0.5 s


def test_commands_stay_inside_the_limits_and_are_finite():
    stream_cfg = StreamConfig(max_linear_speed_mps=0.05, max_angular_speed_radps=0.1)
    s = CommandStream(PERMISSIVE, stream_cfg)
    _, cmds = _run(s, 20)
    lin = np.array([c.linear for c in cmds])
    ang = np.array([c.angular for c in cmds])
    assert np.isfinite(lin).all() and np.isfinite(ang).all()
    assert np.linalg.norm(lin, axis=1).max() <= 0.05 + 1e-12
    assert np.linalg.norm(ang, axis=1).max() <= 0.1 + 1e-12
    assert np.linalg.norm(lin, axis=1).max() > 0.04  # the limit is reached: clipping, not silence


def test_velocity_blends_smoothly_within_a_step():
    s = CommandStream(PERMISSIVE, StreamConfig(blend_fraction=0.5, max_linear_speed_mps=3.0))
    _, cmds = _run(s, 3)
    lin = np.array([c.linear for c in cmds])
    jumps = np.abs(np.diff(lin, axis=0)).max(axis=0)
    target = _chunk(T0, 1).actions[1][:3] * 5.0  # delta per step * 5 Hz
    # smoothstep over 10 ticks: the largest per-tick change is 1.5/10 of the full change (its peak slope)
    assert np.all(jumps <= np.abs(target) * 1.5 / 10 + 1e-9)
    np.testing.assert_allclose(lin[20 + 15], target)  # settled after half a step


def test_mapping_scales_the_translation():
    mapping = ActionMappingConfig(translation_scale=(0.5, 0.5, 0.5))
    s = CommandStream(PERMISSIVE, StreamConfig(blend_fraction=0.0, max_linear_speed_mps=3.0), mapping)
    _, cmds = _run(s, 1)
    np.testing.assert_allclose(cmds[20].linear, _chunk(T0, 1).actions[1][:3] * 0.5 * 5.0)


def test_identical_inputs_give_identical_streams():
    a = _run(CommandStream(PERMISSIVE), 25)[1]
    b = _run(CommandStream(PERMISSIVE), 25)[1]
    assert [(c.stamp_ns, *c.linear, *c.angular) for c in a] == [(c.stamp_ns, *c.linear, *c.angular) for c in b]


def test_reset_restarts_the_schedule():
    s = CommandStream(PERMISSIVE)
    _run(s, 10)
    s.reset()
    out = s.advance_to(T0 + 11 * STEP)
    assert [r.decision for r in out.steps] == ["wait"] and len(out.requests) == 1
    assert s.scheduler.buffer.shape[0] == 0


def test_rate_change_reanchors_without_a_gap():
    s = CommandStream(PERMISSIVE)
    _run(s, 2)
    last = s.processed_until_ns
    s.reconfigure(stream_config=StreamConfig(command_rate_hz=200.0, action_rate_hz=10.0))
    out = s.advance_to(last + NS_PER_S // 10)
    stamps = [c.stamp_ns for c in out.commands]
    assert stamps[0] == last + NS_PER_S // 200 and set(np.diff(stamps)) == {NS_PER_S // 200}
    assert out.steps[0].step == 3 and len(out.steps) == 1


@pytest.mark.parametrize("bad", [np.full((16, 7), np.nan), np.zeros((16, 6)), np.zeros((0, 7)), np.zeros(7)])
def test_bad_chunks_are_rejected(bad):
    with pytest.raises(ValueError):
        make_chunk(bad, T0, 5.0)


def test_older_chunk_is_ignored():
    s = CommandStream(PERMISSIVE)
    s.advance_to(T0)
    assert s.on_chunk(_chunk(T0 + STEP, 1))
    assert not s.on_chunk(_chunk(T0, 0))


@pytest.mark.parametrize(
    "changes",
    [{"command_rate_hz": 50.0}, {"action_rate_hz": 0.0}, {"action_rate_hz": 200.0}, {"blend_fraction": 1.5},
     {"max_linear_speed_mps": 3.5}, {"max_angular_speed_radps": float("nan")}, {"request_timeout_s": 0.0}],
)
def test_stream_config_validation(changes):
    with pytest.raises(ValueError):
        StreamConfig(**changes)


def test_tool_frame_mapping_is_refused():
    with pytest.raises(ValueError, match="tool"):
        CommandStream(mapping_config=ActionMappingConfig(action_frame="tool"))
