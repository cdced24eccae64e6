"""Scheduler node: SP-VLA decision per action step, end-effector twist stream at command rate.

Thin wrapper over :class:`spvla_ros.core.command_stream.CommandStream` (the logic, ROS-free):

* subscribes ``ActionChunk`` (policy) and the instruction (a new one restarts the schedule);
* publishes ``geometry_msgs/TwistStamped`` (EE velocity in ``frame_id``, the FR3 base frame) at
  ``command_rate_hz``, ``InferenceRequest`` one step ahead of a model step, or, when the model is slower
  than a step, the moment the previous answer lands (from the chunk callback), and ``SchedulerStatus``
  at every action step and whenever a chunk arrives;
* every scheduler, stream and mapping setting is a parameter with a description and a range, live:
  an invalid combination is rejected by the on-set callback with the reason, the old values stay;
* ``mode`` loads a named scheduling mode (``config/scheduler_modes.yaml``: ``paper``, ``surprise``, ...)
  into the scheduler parameters at start and whenever it is set, scaled by ``speed_range``; changing any
  scheduler parameter by hand afterwards turns ``mode`` into ``custom`` (``custom`` at start: the
  parameter values of the params file are used as they are).

Time: with ``use_sim_time`` the stream advances on every ``/clock`` message (exactly to its time, so a
replay driven step by step is deterministic); otherwise a timer at ``command_rate_hz`` on the *steady*
clock advances it to ROS time (the clock the safety node and the camera stamps use). Commands are stamped
with their nominal tick time. Clock jumps never flood or silence the stream: a realtime-clock step
(detected against the steady clock, :class:`~spvla_ros.core.clock_watch.ClockWatch`), a ``/clock`` reset or
a gap longer than ``max_catch_up_s`` re-anchors the stream at the new time and restarts the schedule
(logged, counted as ``clock_jump_forward``/``clock_jump_backward`` in the status' drop counts).

Refusals: every chunk the scheduler does not use (bad shape or values, a stamp before the epoch or ahead
of its clock by more than ``max_stamp_lead_s``, older than the one held, answering a request from before the
last instruction change or clock jump, predicted for another instruction) and every ``/clock`` it cannot use
is counted by reason in ``SchedulerStatus.drop_names``/``drop_counts`` and logged at most once per
``core.drop_counts.DROP_LOG_PERIOD_S`` per reason. No header value raises.

Instruction: a new text on the instruction topic restarts the schedule; from then on only chunks carrying
that instruction's digest (``ActionChunk.instruction_digest``) are used. Before the first instruction
message every digest is accepted (the policy runs on its ``instruction`` parameter, unknown here).

Run: ``ros2 run spvla scheduler_node --ros-args --params-file config/spvla.yaml``
"""

from __future__ import annotations

import math

import numpy as np
from geometry_msgs.msg import TwistStamped
from rcl_interfaces.msg import ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.clock import Clock as RclpyClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from spvla.msg import ActionChunk, GripperCommand, InferenceRequest, SchedulerStatus
from std_msgs.msg import String

from spvla_ros.core.action_mapping import ActionMappingConfig
from spvla_ros.core.clock_watch import ClockWatch
from spvla_ros.core.command_stream import (
    Advance,
    ClockJump,
    CommandStream,
    Request,
    StepReport,
    StreamConfig,
    make_chunk,
)
from spvla_ros.core.drop_counts import DropCounts
from spvla_ros.core.gripper import GripperConfig
from spvla_ros.core.instruction import instruction_digest, instruction_for_log
from spvla_ros.core.scheduler_config import SchedulerConfig
from spvla_ros.core.scheduler_modes import SchedulerModes, load_scheduler_modes
from spvla_ros.core.stamps import stamp_to_ns
from spvla_ros.nodes import qos, topics
from spvla_ros.nodes.bringup import share_dir
from spvla_ros.nodes.params import PairedParameters, ParamGroup, specs_from_dataclass
from spvla_ros.nodes.spin import spin_node
from spvla_ros.nodes.time_msg import ns_to_time
from spvla_ros.nodes.time_source import guard_time_source

NODE_NAME = "spvla_scheduler"
BAD_CHUNK = "bad_chunk"
NEGATIVE_CLOCK = "negative_clock"

# Parameter ranges: the span of each rqt slider; declared as the part the config validation accepts (an open
# bound such as clip_bound > 0 moves inward, nodes/params.py), so rclpy refuses what is outside before the
# on-set callback runs. Pairs are valid only together: a request holding both sets them together.
SCHEDULER_FIELDS = (
    "speed_range", "buffer_size", "tau", "v_min", "v_max", "ridge_lambda", "extrapolator", "trend_damping",
    "clip_bound", "cap_step_change", "max_consecutive_extrapolations", "intuitive_test", "fit_history",
    "max_open_loop_s", "max_surprise_fraction",
)
MODE_PARAM = "mode"
CUSTOM_MODE = "custom"
"""``mode`` value that leaves the scheduler parameters as they are."""
MODE_SCALED_FIELDS = {"v_min": "v_min_resolved", "v_max": "v_max_resolved", "clip_bound": "clip_bound_resolved"}
"""Absolute node parameters a mode sets from its fractions of ``speed_range``."""
SCHEDULER_RANGES = {
    "speed_range": (0.0, 10.0),
    "trend_damping": (0.0, 1.0),
    "max_surprise_fraction": (0.0, 10.0),
    "buffer_size": (2, 64),
    "tau": (0.0, 1.0),
    "v_min": (0.0, 10.0),
    "v_max": (0.0, 10.0),
    "ridge_lambda": (0.0, 100.0),
    "clip_bound": (0.0, 10.0),
    "max_consecutive_extrapolations": (1, 1000),
    "max_open_loop_s": (0.0, 60.0),
}
# The YAML always gives concrete numbers: the derived defaults of SchedulerConfig are written out, and
# max_open_loop_s = 0 stands for None ("no bound beyond max_consecutive_extrapolations").
_SCHED_DEFAULT = SchedulerConfig()
SCHEDULER_DEFAULTS = {
    "v_min": _SCHED_DEFAULT.v_min_resolved,
    "v_max": _SCHED_DEFAULT.v_max_resolved,
    "clip_bound": _SCHED_DEFAULT.clip_bound_resolved,
}
SCHEDULER_NONE_VALUES = {"max_open_loop_s": 0.0, "max_surprise_fraction": 0.0}
SCHEDULER_PAIRS = (("v_min", "v_max"),)

STREAM_FIELDS = (
    "action_rate_hz", "command_rate_hz", "blend_fraction", "max_linear_speed_mps", "max_angular_speed_radps",
    "request_timeout_s", "max_stamp_lead_s", "max_catch_up_s", "clock_jump_threshold_s",
)
STREAM_RANGES = {
    "action_rate_hz": (0.1, 100.0),
    "command_rate_hz": (100.0, 1000.0),
    "blend_fraction": (0.0, 1.0),
    "max_linear_speed_mps": (0.0, 3.0),
    "max_angular_speed_radps": (0.0, 2.5),
    "request_timeout_s": (0.01, 60.0),
    "max_stamp_lead_s": (0.0, 10.0),
    "max_catch_up_s": (0.01, 60.0),
    "clock_jump_threshold_s": (0.001, 10.0),
}
GRIPPER_PREFIX = "gripper."
GRIPPER_FIELDS = ("threshold", "band", "min_dwell_s", "open_value_is_high")
GRIPPER_RANGES = {"threshold": (-10.0, 10.0), "band": (0.0, 10.0), "min_dwell_s": (0.0, 60.0)}
MAPPING_PREFIX = "mapping."
MAPPING_FIELDS = ("action_frame", "frame_rpy", "translation_scale", "rotation_scale", "rotation_format")


def scheduler_specs():
    return specs_from_dataclass(
        SchedulerConfig, SCHEDULER_FIELDS, SCHEDULER_RANGES, defaults=SCHEDULER_DEFAULTS,
        none_values=SCHEDULER_NONE_VALUES, pairs=SCHEDULER_PAIRS,
        context={"action_rate_hz": StreamConfig().action_rate_hz},  # the node always passes the stream's
    )


def mode_values(modes: SchedulerModes, mode: str, speed_range: float) -> dict[str, object]:
    """Scheduler parameter values of ``mode`` at ``speed_range`` (the node's names; None as its stand-in)."""
    cfg = modes.config(mode, speed_range=speed_range)
    values = {}
    for spec in scheduler_specs():
        value = getattr(cfg, MODE_SCALED_FIELDS.get(spec.field, spec.field))
        if value is None:
            value = spec.none_value
        if isinstance(spec.default, float):
            value = float(value)
        values[spec.name] = value
    return values


def stream_specs():
    return specs_from_dataclass(StreamConfig, STREAM_FIELDS, STREAM_RANGES)


def gripper_specs():
    return specs_from_dataclass(GripperConfig, GRIPPER_FIELDS, GRIPPER_RANGES, prefix=GRIPPER_PREFIX)


def mapping_specs():
    return specs_from_dataclass(ActionMappingConfig, MAPPING_FIELDS, {}, prefix=MAPPING_PREFIX)


class SchedulerNode(PairedParameters, Node):
    """See the module docstring."""

    PARAMETER_PAIRS = SCHEDULER_PAIRS

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        guard_time_source(self)  # a /clock before the epoch is counted below, it must not end the node
        self._sched_params = ParamGroup(SchedulerConfig, scheduler_specs())
        self._stream_params = ParamGroup(StreamConfig, stream_specs())
        self._mapping_params = ParamGroup(ActionMappingConfig, mapping_specs())
        self._gripper_params = ParamGroup(GripperConfig, gripper_specs())
        self._modes = load_scheduler_modes(share_dir() / "config" / "scheduler_modes.yaml")
        stream_cfg = self._stream_params.build(self._stream_params.declare_values(self))
        self._sched_params.declare_values(self)
        self._mode = self.declare_parameter(MODE_PARAM, self._modes.default, ParameterDescriptor(
            name=MODE_PARAM, type=ParameterType.PARAMETER_STRING,
            description=f"scheduling mode loaded into the scheduler parameters: {', '.join(self._modes.names)}, "
                        f"or {CUSTOM_MODE} (keep them as set); default = benchmark winner",
        )).value
        self._check_mode(self._mode)
        if self._mode != CUSTOM_MODE:  # before the callbacks exist: the mode's values are the start values
            values = mode_values(self._modes, self._mode, self._sched_params.values["speed_range"])
            self.set_parameters([Parameter(n, value=v) for n, v in values.items()])
            self._sched_params.values.update(values)
        self._loading_mode = False
        sched_cfg = self._sched_params.build(self._sched_params.values, {"action_rate_hz": stream_cfg.action_rate_hz})
        mapping_cfg = self._mapping_params.build(self._mapping_params.declare_values(self),
                                                 {"action_rate_hz": stream_cfg.action_rate_hz})
        gripper_cfg = self._gripper_params.build(self._gripper_params.declare_values(self))
        self._frame_id = self.declare_parameter("frame_id", "fr3_link0").value
        self._core = CommandStream(sched_cfg, stream_cfg, mapping_cfg, gripper_cfg)
        self._instruction: str | None = None
        self.drops = DropCounts()
        self._steady = RclpyClock(clock_type=ClockType.STEADY_TIME)
        self._clock_watch = ClockWatch(stream_cfg.clock_jump_threshold_s)

        self._cmd_pub = self.create_publisher(TwistStamped, topics.CMD_TWIST, qos.COMMAND_QOS)
        self._request_pub = self.create_publisher(InferenceRequest, topics.INFERENCE_REQUEST, qos.REQUEST_QOS)
        self._status_pub = self.create_publisher(SchedulerStatus, topics.SCHEDULER_STATUS, qos.STATUS_QOS)
        self._gripper_pub = self.create_publisher(GripperCommand, topics.GRIPPER_COMMAND, qos.GRIPPER_QOS)
        self.create_subscription(ActionChunk, topics.ACTION_CHUNK, self._on_chunk, qos.CHUNK_QOS)
        self.create_subscription(String, topics.INSTRUCTION, self._on_instruction, qos.INSTRUCTION_QOS)
        self._sim_time = bool(self.get_parameter("use_sim_time").value)
        self._timer = None
        if self._sim_time:
            # Advance exactly to each /clock time, in the callback of that message (deterministic replays).
            self.create_subscription(Clock, "/clock", self._on_clock, 10)
        else:
            self._start_timer(stream_cfg.command_rate_hz)
        self.add_on_set_parameters_callback(self._validate_params)
        self.add_post_set_parameters_callback(self._apply_params)
        self.get_logger().info(
            f"streaming at {stream_cfg.command_rate_hz:g} Hz, deciding at {stream_cfg.action_rate_hz:g} Hz "
            f"({'sim' if self._sim_time else 'wall'} time), frame {self._frame_id}, scheduling mode {self._mode}"
        )

    @property
    def core(self) -> CommandStream:
        return self._core

    # ------------------------------------------------------------------ parameters (live)
    def _candidate(self, params: list[Parameter]):
        stream_vals = self._stream_params.candidate(params) or self._stream_params.values
        sched_vals = self._sched_params.candidate(params) or self._sched_params.values
        mapping_vals = self._mapping_params.candidate(params) or self._mapping_params.values
        gripper_vals = self._gripper_params.candidate(params) or self._gripper_params.values
        self._gripper_params.build(gripper_vals)  # raises for invalid gripper values
        stream = self._stream_params.build(stream_vals)
        sched = self._sched_params.build(sched_vals, {"action_rate_hz": stream.action_rate_hz})
        mapping = self._mapping_params.build(mapping_vals, {"action_rate_hz": stream.action_rate_hz})
        CommandStream._mapping_for(mapping, stream)  # raises for unsupported mappings
        return (stream_vals, sched_vals, mapping_vals), (stream, sched, mapping)

    def _check_mode(self, mode: str) -> None:
        if mode != CUSTOM_MODE and mode not in self._modes.names:
            raise ValueError(f"unknown mode {mode!r}: choose one of {[*self._modes.names, CUSTOM_MODE]}")

    def _validate_params(self, params: list[Parameter]) -> SetParametersResult:
        try:
            for p in params:
                if p.name == MODE_PARAM:
                    self._check_mode(p.value)
            self._candidate(params)
        except (ValueError, TypeError) as exc:
            self.get_logger().warning(f"rejected parameter change {[p.name for p in params]}: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply_params(self, params: list[Parameter]) -> None:
        names = {p.name for p in params}
        if MODE_PARAM in names:
            self._mode = next(p.value for p in params if p.name == MODE_PARAM)
        if not names - {MODE_PARAM}:
            self._load_mode()
            return
        (stream_vals, sched_vals, mapping_vals), (stream, sched, mapping) = self._candidate(params)
        old_rate = self._core.stream_config.command_rate_hz
        self._stream_params.values, self._sched_params.values = stream_vals, sched_vals
        self._mapping_params.values = mapping_vals
        self._gripper_params.values = self._gripper_params.candidate(params) or self._gripper_params.values
        self._core.reconfigure(sched, stream, mapping, self._gripper_params.build(self._gripper_params.values))
        self._clock_watch = ClockWatch(stream.clock_jump_threshold_s)
        if self._timer is not None and stream.command_rate_hz != old_rate:
            self._start_timer(stream.command_rate_hz)
        self.get_logger().info(f"parameters applied: {', '.join(f'{p.name}={p.value}' for p in params)}")
        if self._loading_mode or self._mode == CUSTOM_MODE:
            return
        if "speed_range" in names and not (names - {"speed_range", MODE_PARAM}) & set(self._sched_params.specs):
            self._load_mode()  # the mode's bands follow the new speed range
        elif names & set(self._sched_params.specs):
            self.set_parameters([Parameter(MODE_PARAM, value=CUSTOM_MODE)])  # hand-tuned: no longer the mode

    def _load_mode(self) -> None:
        """Write the current mode's values (at the current speed range) into the scheduler parameters."""
        if self._mode == CUSTOM_MODE:
            return
        values = mode_values(self._modes, self._mode, self._sched_params.values["speed_range"])
        self._loading_mode = True
        try:
            result = self.set_parameters_atomically([Parameter(n, value=v) for n, v in values.items()])
        finally:
            self._loading_mode = False
        if not result.successful:
            self.get_logger().error(f"mode {self._mode!r} could not be loaded: {result.reason}")
        else:
            self.get_logger().info(f"scheduling mode {self._mode!r} loaded")

    def _start_timer(self, rate_hz: float) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
        self._timer = self.create_timer(1.0 / rate_hz, self._on_timer, clock=self._steady)

    # ------------------------------------------------------------------ callbacks
    def _steady_now_ns(self) -> int:
        return self._steady.now().nanoseconds

    def _ros_now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_timer(self) -> None:
        now_ns = self._ros_now_ns()
        jump = None
        if self._clock_watch.check(self._steady_now_ns(), now_ns) and self._core.processed_until_ns is not None:
            jump = self._core.rebase(now_ns)  # the realtime clock was stepped: follow it at once
        out = self._core.advance_to(now_ns)
        self._report_jump(jump or out.jump, "wall clock (ROS time against the steady clock)")
        self._publish(out)

    def _on_clock(self, msg: Clock) -> None:
        t_ns = stamp_to_ns(msg.clock)
        if t_ns < 0:
            self._drop(NEGATIVE_CLOCK, f"/clock {t_ns / 1e9:.3f} s is before the epoch: ignored")
            return
        out = self._core.advance_to(t_ns)
        self._report_jump(out.jump, "/clock")
        self._publish(out)

    def _on_chunk(self, msg: ActionChunk) -> None:
        try:
            actions = np.asarray(msg.data, dtype=np.float32).astype(np.float64)
            if actions.size != msg.rows * msg.cols:
                raise ValueError(f"data has {actions.size} values, rows*cols = {msg.rows}x{msg.cols}")
            chunk = make_chunk(actions.reshape(msg.rows, msg.cols), stamp_to_ns(msg.header.stamp),
                               msg.action_rate_hz, msg.request_id, msg.keep_ratio, msg.model_latency_s,
                               msg.instruction_digest)
        except (ValueError, TypeError, OverflowError) as exc:
            self._drop(BAD_CHUNK, f"dropped action chunk {msg.request_id}: {exc}")
            return
        refusal = self._core.on_chunk(chunk)
        if refusal is not None:
            self._drop(refusal, f"dropped action chunk {msg.request_id} "
                                f"(image stamp {chunk.image_stamp_ns / 1e9:.3f} s, stream at "
                                f"{(self._core.processed_until_ns or 0) / 1e9:.3f} s): {refusal}")
            return
        self._publish_status(None, "chunk_arrived")
        request = self._core.poll_request()  # a model slower than a step is asked again at once
        if request is not None:
            self._publish_request(request)

    def _on_instruction(self, msg: String) -> None:
        if msg.data != self._instruction:
            self._core.reset(instruction_digest(msg.data))
            self.get_logger().info(f"instruction {instruction_for_log(msg.data)}: schedule restarted, chunks for "
                                   "any other instruction are dropped from now on")
            self._instruction = msg.data

    def _drop(self, reason: str, text: str) -> None:
        """Count a refused input under ``reason``; log it at most once a second per reason."""
        self.drops.report(reason, text, self.get_logger().warning)

    def _report_jump(self, jump: ClockJump | None, source: str) -> None:
        if jump is None:
            return
        self._drop(jump.kind, f"{source} jumped {'forward' if jump.to_ns > jump.from_ns else 'back'} by "
                              f"{abs(jump.to_ns - jump.from_ns) / 1e9:.3f} s: stream re-anchored at "
                              f"{jump.to_ns / 1e9:.3f} s, schedule restarted")

    # ------------------------------------------------------------------ output
    def _publish_request(self, request: Request) -> None:
        msg = InferenceRequest(request_id=request.request_id, for_step=request.for_step, speed=request.speed)
        msg.header.stamp = ns_to_time(request.stamp_ns)
        msg.header.frame_id = self._frame_id
        self._request_pub.publish(msg)

    def _publish(self, out: Advance) -> None:
        for request in out.requests:
            self._publish_request(request)
        step_iter = iter(out.steps)
        next_step = next(step_iter, None)
        for cmd in out.commands:
            while next_step is not None and next_step.stamp_ns <= cmd.stamp_ns:
                self._publish_status(next_step, next_step.reason)
                if next_step.gripper is not None:
                    self._publish_gripper(next_step)
                next_step = next(step_iter, None)
            msg = TwistStamped()
            msg.header.stamp = ns_to_time(cmd.stamp_ns)
            msg.header.frame_id = self._frame_id
            (msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z) = (float(v) for v in cmd.linear)
            (msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z) = (float(v) for v in cmd.angular)
            self._cmd_pub.publish(msg)

    def _publish_gripper(self, report: StepReport) -> None:
        msg = GripperCommand(state=report.gripper.value, model_value=float(report.action[-1]), step=report.step)
        msg.header.stamp = ns_to_time(report.stamp_ns)
        msg.header.frame_id = self._frame_id
        self._gripper_pub.publish(msg)
        self.get_logger().info(f"gripper -> {report.gripper.value} (model value {report.action[-1]:.3f})")

    def _publish_status(self, report: StepReport | None, reason: str) -> None:
        core = self._core
        c = core.counters
        msg = SchedulerStatus()
        stamp = report.stamp_ns if report is not None else core.processed_until_ns
        msg.header.stamp = ns_to_time(stamp or 0)
        msg.header.frame_id = self._frame_id
        msg.step = max(core.step, 0) if report is None else report.step
        msg.reason = reason
        buffer = core.scheduler.buffer
        msg.buffer_fill = int(buffer.shape[0])
        msg.buffer_size = core.scheduler.config.buffer_size
        if report is not None:
            msg.decision = report.decision
            msg.intuitive_ratio = float(report.intuitive_ratio)
            msg.speed = float(report.speed)
            if report.chunk_image_stamp_ns is not None:
                msg.source_image_stamp = ns_to_time(report.chunk_image_stamp_ns)
        else:
            msg.speed = float(np.linalg.norm(buffer[-1, :3])) if buffer.shape[0] else math.nan
        chunk = core.last_chunk
        msg.keep_ratio = math.nan if chunk is None else chunk.keep_ratio
        msg.model_latency_s = math.nan if chunk is None else chunk.model_latency_s
        msg.model_steps, msg.extrapolated_steps = c.model_steps, c.extrapolated_steps
        msg.wait_steps, msg.late_chunk_steps = c.wait_steps, c.late_chunk_steps
        msg.consecutive_extrapolations = core.scheduler.consecutive_extrapolations
        msg.requests_sent, msg.chunks_received = c.requests_sent, c.chunks_received
        msg.inference_pending = core.pending_request is not None
        msg.drop_names, msg.drop_counts = self.drops.as_lists()
        self._status_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    return spin_node(SchedulerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
