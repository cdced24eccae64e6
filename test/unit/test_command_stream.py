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
from spvla_ros.core.gripper import GripperConfig, GripperState
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
    s.advance_to(T0 + STEP)
    assert s.on_chunk(_chunk(T0 + STEP, 1)) is None
    assert s.on_chunk(_chunk(T0, 0)) == "older_than_held"


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


# ------------------------------------------------------------------ a model slower than one step (issue 19.1)
@pytest.mark.parametrize("latency_s", [0.05, 0.15, 0.21, 0.27, 0.5])
def test_slow_model_is_kept_busy_and_a_fast_one_is_asked_once_per_step(latency_s):
    """Every step wants the model: requests at >= 90 % of min(action rate, 1 / latency), never above the
    action rate (the simulated model answers on the stream clock; the chunk callback polls for a request)."""
    from spvla_ros.bench.model_latency_bench import simulate

    run = simulate(latency_s, duration_s=20.0)
    assert run.rate_ratio >= 0.9, run
    assert run.requests <= 20.0 * 5.0 + 1  # one request per action step at most (+ the first)
    if latency_s >= 0.2:  # the model is the bottleneck: it never waits for the schedule
        assert run.model_duty_cycle >= 0.95, run
    else:
        assert run.late_row_fraction == 0.0 and run.wait_steps == 1  # only the very first step waits


def test_next_request_leaves_when_the_answer_lands_and_rows_follow_the_image_stamp():
    s = CommandStream(SchedulerConfig())  # paper rule on motion along x only: every step wants the model
    (first,) = s.advance_to(T0).requests
    frame = T0 + NS_PER_S // 30  # the policy took a frame newer than the request
    land = T0 + 270_000_000  # 0.27 s later: in the middle of step 1
    s.advance_to(land)
    assert s.poll_request() is None  # nothing new while the first request is out
    chunk = make_chunk(np.arange(16)[:, None] * np.array([0.001, 0, 0, 0, 0, 0, 0]) + [0.01, 0, 0, 0, 0, 0, 1],
                       frame, 5.0, first.request_id)
    assert s.on_chunk(chunk) is None
    second = s.poll_request()
    assert second is not None and second.stamp_ns == land and second.request_id == first.request_id + 1
    assert s.poll_request() is None  # one in flight
    (step2,) = s.advance_to(T0 + 2 * STEP).steps
    row = round((T0 + 2 * STEP - frame) * 5.0 / NS_PER_S)  # latency compensation by the image stamp: row 2
    assert row == 2 and step2.decision == "model"
    np.testing.assert_array_equal(step2.action, chunk.actions[row])


# ------------------------------------------------------------------ chunk rate != stream rate (issue 19.3)
@pytest.mark.parametrize("chunk_rate", [5.0, 3.0, 15.0])
def test_chunk_at_another_rate_commands_the_displacement_its_rows_imply(chunk_rate):
    """A 3 Hz (fractal) or 15 Hz chunk on the 5 Hz stream: rows at the chunk's rate, velocities from the
    chunk's rate, so the commanded displacement is what the rows imply (the old re-indexing over-commanded)."""
    rows = 16
    dx = 0.01 + 0.002 * np.arange(rows)  # m per chunk step, a ramp
    actions = np.zeros((rows, 7))
    actions[:, 0], actions[:, 6] = dx, 1.0
    s = CommandStream(SchedulerConfig(), StreamConfig(blend_fraction=0.0, max_linear_speed_mps=3.0))
    s.advance_to(T0)  # step 0 waits: no chunk yet
    assert s.on_chunk(make_chunk(actions, T0, chunk_rate, 1)) is None
    commands = []
    for k in range(1, round(rows / chunk_rate * 5) + 5):
        commands += s.advance_to(T0 + k * STEP).commands
    commanded = sum(c.linear[0] for c in commands) / 100.0  # each command holds for 10 ms
    q = 1.0 / chunk_rate
    starts = np.arange(rows) * q
    share = np.clip((starts + q - 0.2) / q, 0.0, 1.0)  # the stream executes the chunk from step 1 (0.2 s) on
    assert commanded == pytest.approx(float(share @ dx), rel=1e-9)
    if chunk_rate <= 5.0:  # step 2 (0.4-0.6 s) lies inside one row: that row's delta at the chunk's own rate
        row = int(0.4 // q)
        assert (row + 1) * q >= 0.6
        inside = next(c for c in commands if c.stamp_ns == T0 + 2 * STEP)
        assert inside.linear[0] == pytest.approx(dx[row] * chunk_rate, rel=1e-12)


# ------------------------------------------------------------------ clock jumps (issue 19.2)
def _stream_with_motion():
    s = CommandStream(SchedulerConfig())
    _, cmds = _run(s, 10)
    assert np.abs(cmds[-1].linear).max() > 0  # moving
    return s


def test_forward_jump_streams_at_most_the_catch_up_and_reanchors():
    s = _stream_with_motion()
    last = s.processed_until_ns
    out = s.advance_to(last + 60 * NS_PER_S)  # the clock jumps a minute ahead
    assert out.jump is not None and out.jump.kind == "clock_jump_forward"
    assert len(out.commands) == 1 and out.commands[0].stamp_ns == last + 60 * NS_PER_S
    assert [r.decision for r in out.steps] == ["wait"] and len(out.requests) == 1  # schedule restarted
    assert np.abs(out.commands[0].linear).max() > 0  # blends down from the last velocity, no step to zero
    # a gap within max_catch_up_s is streamed in full (sim time advancing in coarse steps)
    t = s.processed_until_ns
    out = s.advance_to(t + NS_PER_S)
    assert out.jump is None and len(out.commands) == 100


def test_backward_jump_reanchors_instead_of_silencing_the_stream():
    s = _stream_with_motion()
    last = s.processed_until_ns
    held = s.last_chunk
    assert s.advance_to(last - NS_PER_S // 100).commands == []  # within the threshold: wait for time to pass
    out = s.advance_to(last - 30 * NS_PER_S)  # /clock reset
    assert out.jump is not None and out.jump.kind == "clock_jump_backward"
    assert [c.stamp_ns for c in out.commands] == [last - 30 * NS_PER_S] and s.last_chunk is None
    out = s.advance_to(last - 30 * NS_PER_S + STEP)
    assert len(out.commands) == 20  # streaming on from the new time
    # the chunk held before the jump is stamped 30 s in the future now: refused, cannot take over
    assert s.on_chunk(held) == "future_stamp"
    request = s.pending_request
    fresh = _chunk(request.stamp_ns, request.request_id)
    assert s.on_chunk(fresh) is None
    (step,) = s.advance_to(s.processed_until_ns + STEP).steps
    assert step.decision == "model" and step.chunk_image_stamp_ns == request.stamp_ns


def test_gripper_dwell_runs_on_monotonic_stream_time_across_a_backward_jump():
    s = CommandStream(SchedulerConfig(), gripper_config=GripperConfig(min_dwell_s=0.5))
    s.advance_to(T0)
    r = s.pending_request
    s.on_chunk(make_chunk(np.tile([0.01, 0, 0, 0, 0, 0, 1.0], (16, 1)), T0, 5.0, r.request_id))
    (opened,) = s.advance_to(T0 + STEP).steps
    assert opened.gripper is GripperState.OPEN
    s.advance_to(T0 + 2 * STEP)
    s.advance_to(T0 - 10 * NS_PER_S)  # back by 10 s
    r = s.pending_request
    s.on_chunk(make_chunk(np.tile([0.01, 0, 0, 0, 0, 0, 0.0], (16, 1)), r.stamp_ns, 5.0, r.request_id))
    (early,) = s.advance_to(T0 - 10 * NS_PER_S + STEP).steps
    assert early.decision == "model" and early.gripper is None  # 0.41 s of stream time since the open: dwell
    (closed,) = s.advance_to(T0 - 10 * NS_PER_S + 2 * STEP).steps
    assert closed.gripper is GripperState.CLOSED  # 0.61 s: the dwell has passed (wall time would say -9.6 s)


# ------------------------------------------------------------------ refused chunks (issue 15.4/15.5)
def test_future_and_negative_stamps_are_refused_and_cannot_take_over():
    s = CommandStream(SchedulerConfig())
    s.advance_to(T0)
    assert s.on_chunk(_chunk(T0 + 3600 * NS_PER_S, 0)) == "future_stamp"
    assert s.on_chunk(_chunk(-NS_PER_S, 0)) == "negative_stamp"
    assert s.on_chunk(_chunk(T0 + 40_000_000, 0)) is None  # within max_stamp_lead_s (0.05 s)
    request = s.pending_request
    s.advance_to(T0 + STEP)
    assert s.on_chunk(_chunk(T0 + STEP, request.request_id)) is None  # a real chunk still wins
    (step,) = s.advance_to(T0 + 2 * STEP).steps
    assert step.chunk_image_stamp_ns == T0 + STEP


def test_answers_from_before_a_reset_are_dropped_even_for_the_same_instruction():
    a, b = "digest-of-a", "digest-of-b"
    s = CommandStream(SchedulerConfig())
    s.reset(instruction_digest=a)
    (old,) = s.advance_to(T0).requests
    s.reset(instruction_digest=b)
    s.reset(instruction_digest=a)  # A -> B -> A while the first request is in flight
    late = make_chunk(np.tile([0.01, 0, 0, 0, 0, 0, 0.0], (16, 1)), T0, 5.0, old.request_id, instruction_digest=a)
    assert s.on_chunk(late) == "old_request"
    (new,) = s.advance_to(T0 + STEP // 2).requests
    assert s.on_chunk(make_chunk(late.actions, T0, 5.0, new.request_id, instruction_digest=b)) == "other_instruction"
    assert s.on_chunk(make_chunk(late.actions, T0, 5.0, new.request_id)) == "no_instruction_digest"
    assert s.on_chunk(make_chunk(late.actions, T0, 5.0, new.request_id, instruction_digest=a)) is None


def test_before_the_first_instruction_any_digest_is_accepted():
    s = CommandStream(SchedulerConfig())
    assert s.instruction_digest is None
    s.advance_to(T0)
    assert s.on_chunk(make_chunk(np.zeros((16, 7)), T0, 5.0, 1, instruction_digest="whatever")) is None
    assert s.on_chunk(make_chunk(np.zeros((16, 7)), T0, 5.0, 0)) is None


def test_a_chunk_before_the_stream_started_is_refused():
    assert CommandStream().on_chunk(_chunk(T0, 0)) == "stream_not_started"


def test_clock_watch_sees_steps_of_the_clock_not_its_slew():
    from spvla_ros.core.clock_watch import ClockWatch

    watch = ClockWatch(threshold_s=0.1)
    steady, ros = 0, T0
    assert watch.check(steady, ros) == 0  # no reference yet
    for _ in range(100_000):  # NTP slewing at its maximum, 500 ppm, for 1000 s in 10 ms callbacks
        steady, ros = steady + 10_000_000, ros + 10_005_000
        assert watch.check(steady, ros) == 0
    assert watch.check(steady + 10_000_000, ros + 10_000_000 - 2 * NS_PER_S) == -2 * NS_PER_S
