"""Policy node: hosts CogACT with SP-VLA token pruning and answers the scheduler's inference requests.

* subscribes ``sensor_msgs/Image`` (rgb8/bgr8/rgba8/bgra8) and ``sensor_msgs/CompressedImage`` (JPEG/PNG)
  and keeps only the newest frame (the callbacks store a reference, nothing else);
* subscribes the instruction (``std_msgs/String``, latched); the ``instruction`` parameter is the default;
* on every ``InferenceRequest`` it turns the request's speed into the pruning keep ratio
  (``keep_ratio_for_speed`` with ``v_pmin``/``v_pmax``/``min_keep_ratio``) and hands (newest frame,
  instruction, keep ratio) to a worker thread through a size-1 queue: a request that finds the queue
  full replaces the waiting one, so inference never runs on an old frame and no backlog builds up.
  The executor thread never runs the model;
* the worker converts the image, runs ``predict_chunk`` and publishes an ``ActionChunk`` stamped with
  the image time and carrying the keep ratio, token count and model latency.

A request that finds no frame, or only one older than ``max_frame_age_s`` at the request time, waits
for the next frame (a newer request replaces it; the replaced one is counted). A bad encoding or a
missing instruction gives a logged reason and no chunk (the scheduler then keeps waiting with zero
velocity and re-requests later).

Stamps (no header value can raise: integer nanoseconds, ``spvla_ros.core.stamps``): a frame stamped
before the epoch (a negative or int32-wrapped ``sec``) is dropped. A frame stamped more than
``max_future_stamp_s`` ahead of the node clock never becomes the newest frame: it is held back until the
clock (or the stamp of a request) reaches it, and dropped if that takes longer than ``max_frame_age_s``
(one bad stamp cannot freeze the policy's view; a replay that publishes each frame just before moving
``/clock`` to its stamp still works). An instruction change discards the queued job and the result of
the one in flight (never published), so no chunk for the old instruction leaves the node; every chunk
carries the digest of its instruction for the scheduler to check. Every refusal is counted by reason in
``PolicyStatus`` and logged (rate-limited).

Configuration: ``policy_config`` (default ``config/policy.yaml``: CFG, DDIM, ensemble; its
``resize_interpolation`` is also a read-only parameter here, default ``pil_bicubic`` as the official CogACT) and
``pruning_config`` (default ``config/pruning.yaml``). Every ``PruningConfig`` field is a parameter of this node
whose start value is that file's (a params file or ``-p`` still overrides it); all but ``patch_size`` are live,
and a change reaches the next model call (Canny thresholds, semantic mode and mass, position ids, speed ramp).

Run: ``ros2 run spvla policy_node --ros-args --params-file config/spvla.yaml -p preset:=tiny``
"""

from __future__ import annotations

import array
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from spvla.msg import ActionChunk, InferenceRequest, PolicyStatus
from std_msgs.msg import String

from spvla_ros.core.config_io import CONFIG_DIR, dataclass_from_yaml
from spvla_ros.core.drop_counts import DROP_LOG_PERIOD_S, DropCounts
from spvla_ros.core.image_convert import compressed_to_rgb, image_to_rgb
from spvla_ros.core.instruction import instruction_digest, instruction_for_log
from spvla_ros.core.pruning.config import PruningConfig
from spvla_ros.core.pruning.keep_ratio import keep_ratio_for_speed
from spvla_ros.core.stamps import NS_PER_S, REFUSE_FUTURE_STAMP, REFUSE_NEGATIVE_STAMP, stamp_refusal, stamp_to_ns
from spvla_ros.nodes import qos, topics
from spvla_ros.nodes.params import PairedParameters, ParamGroup, specs_from_dataclass
from spvla_ros.nodes.spin import spin_node
from spvla_ros.nodes.time_source import guard_time_source

NODE_NAME = "spvla_policy"
PRUNING_FIELDS = tuple(f.name for f in fields(PruningConfig))
"""Every PruningConfig field is a parameter of this node; its start value comes from the ``pruning_config`` file."""
MAX_CANNY_GRADIENT = 2040.0
"""Largest |Gx| + |Gy| of OpenCV Canny's 3x3 Sobel on a uint8 image (2 x 4 x 255): no threshold above it matters."""
PRUNING_RANGES = {"v_pmin": (0.0, 10.0), "v_pmax": (0.0, 10.0), "min_keep_ratio": (0.0, 1.0),
                  "canny_low": (0.0, MAX_CANNY_GRADIENT), "canny_high": (0.0, MAX_CANNY_GRADIENT),
                  "min_edge_pixels": (1, PruningConfig().patch_size ** 2), "t_ks": (0.0, 100.0),
                  "semantic_mass": (0.0, 1.0)}
"""Slider spans; declared as the part PruningConfig accepts (min_keep_ratio > 0, v_pmax > v_pmin: params.py)."""
PRUNING_PAIRS = (("v_pmin", "v_pmax"), ("canny_low", "canny_high"))
PRUNING_READ_ONLY = ("patch_size",)
"""The vision encoders' patch side is architecture, not tuning."""
PRUNING_FILE = "pruning.yaml"
POLICY_FILE = "policy.yaml"
RESIZE_PARAM = "resize_interpolation"
"""PolicyConfig field exposed on the node (read-only; the rest of PolicyConfig comes from ``policy_config``)."""
WORKER_POLL_S = 0.1
"""How often the worker checks for shutdown while idle, s."""
JOIN_TIMEOUT_S = 0.5
"""Bound on waiting for the worker at shutdown (a model call in flight is abandoned: daemon thread)."""
DROP_INSTRUCTION_CHANGED = "instruction_changed"
DROP_BAD_IMAGE = "bad_image"


class Policy(Protocol):
    """What the node needs from a policy (``spvla_ros.core.policy.CogACTPolicy``)."""

    action_rate_hz: float
    pruning_config: PruningConfig

    def predict_chunk(self, image: np.ndarray, instruction: str, keep_ratio: float = 1.0) -> Any: ...

    def reset(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Job:
    request: InferenceRequest
    frame: Image | CompressedImage
    instruction: str
    keep_ratio: float


class PolicyNode(PairedParameters, Node):
    """See the module docstring. ``policy`` injects a ready policy (tests); otherwise ``load_policy`` runs."""

    PARAMETER_PAIRS = PRUNING_PAIRS

    def __init__(self, policy: Policy | None = None, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        guard_time_source(self)  # sim time: a /clock before the epoch must not end the node
        ro = ParameterDescriptor(read_only=True)
        self._preset = self.declare_parameter(
            "preset", "tiny", _desc("CogACT preset: tiny (random init, CPU) or cogact-base", True)).value
        self._checkpoint = self.declare_parameter(
            "checkpoint", "", _desc("CogACT checkpoint directory (official release layout); empty = none", True)
        ).value
        self._device = self.declare_parameter("device", "cpu", _desc("torch device: cpu or cuda", True)).value
        self._unnorm_key = self.declare_parameter(
            "unnorm_key", "", _desc("dataset_statistics key for unnormalization; empty = checkpoint default", True)
        ).value
        self._seed = self.declare_parameter("seed", 0, _desc("torch seed of the diffusion sampler", True)).value
        self._default_instruction = self.declare_parameter(
            "instruction", "", _desc("instruction used until one arrives on the instruction topic", False)
        ).value
        self._frame_id = self.declare_parameter("frame_id", "fr3_link0", ro).value
        status_rate_hz = self.declare_parameter(
            "status_rate_hz", 1.0, _desc("PolicyStatus publish rate, Hz", True, (0.1, 100.0))).value
        self._max_frame_age_s = self.declare_parameter(
            "max_frame_age_s", 1.0,
            _desc("a frame older than this at the request time is not used, s", False, (0.0, 60.0))).value
        self._max_future_stamp_s = self.declare_parameter(
            "max_future_stamp_s", 0.05,
            _desc("a frame stamped further ahead of the node clock is held back (never the newest frame) "
                  "until the clock reaches it, s", False, (0.0, 10.0))).value
        policy_cfg = self._declare_policy_config()
        self._pruning = ParamGroup(PruningConfig, pruning_specs(self._declare_config_file(
            "pruning_config", PRUNING_FILE, "SP-VLA token pruning (PruningConfig) YAML: start values of the "
            "pruning parameters of this node")))
        self._pruning_cfg = self._pruning.declare(self)

        if policy is None:
            from spvla_ros.core.policy import load_policy

            policy = load_policy(
                preset=self._preset, checkpoint=self._checkpoint or None, device=self._device,
                unnorm_key=self._unnorm_key or None, seed=self._seed, config=policy_cfg,
                pruning_config=self._pruning_cfg,
            )
        self._policy = policy
        self._policy.pruning_config = self._pruning_cfg
        self._frame: Image | CompressedImage | None = None
        self._early: tuple[Image | CompressedImage, float] | None = None  # (frame ahead of the clock, arrival s)
        self._instruction: str = self._default_instruction
        self._frame_lock = threading.Lock()
        self._publish_lock = threading.Lock()  # an instruction change and a chunk's publish never interleave
        self._waiting: InferenceRequest | None = None
        self._jobs: queue.Queue[_Job] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self.chunks_published = 0
        self.jobs_replaced = 0
        self.requests_received = 0
        self.drops = DropCounts()
        self._busy = False
        self._last_latency_s = float("nan")

        self._chunk_pub = self.create_publisher(ActionChunk, topics.ACTION_CHUNK, qos.CHUNK_QOS)
        self._status_pub = self.create_publisher(PolicyStatus, topics.POLICY_STATUS, qos.POLICY_STATUS_QOS)
        self.create_subscription(Image, topics.IMAGE, self._on_frame, qos.IMAGE_QOS)
        self.create_subscription(CompressedImage, topics.IMAGE_COMPRESSED, self._on_frame, qos.IMAGE_QOS)
        self.create_subscription(String, topics.INSTRUCTION, self._on_instruction, qos.INSTRUCTION_QOS)
        self.create_subscription(InferenceRequest, topics.INFERENCE_REQUEST, self._on_request, qos.REQUEST_QOS)
        self.add_on_set_parameters_callback(self._validate_params)
        self.add_post_set_parameters_callback(self._apply_params)
        self._worker = threading.Thread(target=self._work, name="spvla_policy_worker", daemon=True)
        self._worker.start()
        self.create_timer(1.0 / status_rate_hz, self.publish_status)
        self.publish_status()  # ready: latched, so a bag player started later sees it too
        self.get_logger().info(
            f"policy {self._preset!r} on {self._device} ready ({policy.action_rate_hz:g} Hz actions)"
        )

    @property
    def requests_refused(self) -> int:
        return self.drops.total

    def publish_status(self) -> None:
        """Publish PolicyStatus (ready, counters, drops by reason)."""
        msg = PolicyStatus(ready=not self._stop.is_set(), preset=str(self._preset), device=str(self._device),
                           instruction_digest=instruction_digest(self._instruction) if self._instruction else "",
                           busy=self._busy, requests_received=self.requests_received,
                           chunks_published=self.chunks_published, jobs_replaced=self.jobs_replaced,
                           last_latency_s=self._last_latency_s)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self._frame_id
        msg.drop_names, msg.drop_counts = self.drops.as_lists()
        self._status_pub.publish(msg)

    # ------------------------------------------------------------------ parameters
    def _declare_config_file(self, name: str, default_file: str, what: str) -> Path:
        """A read-only file parameter; '' = ``config/<default_file>`` of the package."""
        value = self.declare_parameter(name, "", _desc(f"{what}; '' = config/{default_file} of the package",
                                                       True)).value
        return Path(value) if value else CONFIG_DIR / default_file

    def _declare_policy_config(self):
        """PolicyConfig from the ``policy_config`` file, with ``resize_interpolation`` from its parameter."""
        from spvla_ros.core.policy.policy_config import PolicyConfig, load_policy_config

        cfg = load_policy_config(self._declare_config_file(
            "policy_config", POLICY_FILE, "CogACT runtime settings (PolicyConfig) YAML"))
        (spec,) = specs_from_dataclass(PolicyConfig, (RESIZE_PARAM,), {}, read_only=(RESIZE_PARAM,),
                                       defaults={RESIZE_PARAM: cfg.resize_interpolation})
        resize = self.declare_parameter(spec.name, spec.default, spec.descriptor()).value
        return replace(cfg, resize_interpolation=resize)

    def _validate_params(self, params: list[Parameter]) -> SetParametersResult:
        try:
            values = self._pruning.candidate(params)
            if values is not None:
                self._pruning.build(values)
        except (ValueError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply_params(self, params: list[Parameter]) -> None:
        values = self._pruning.candidate(params)
        if values is not None:
            self._pruning_cfg = self._pruning.build(values)
            self._pruning.values = values
            self._policy.pruning_config = self._pruning_cfg  # the next model call selects tokens with it
        for p in params:
            if p.name == "max_frame_age_s":
                self._max_frame_age_s = p.value
            elif p.name == "max_future_stamp_s":
                self._max_future_stamp_s = p.value
            elif p.name == "instruction" and p.value:
                self._set_instruction(p.value)

    # ------------------------------------------------------------------ callbacks (cheap)
    def _on_frame(self, msg: Image | CompressedImage) -> None:
        now_ns = self.get_clock().now().nanoseconds
        stamp_ns = stamp_to_ns(msg.header.stamp)
        refusal = stamp_refusal(stamp_ns, now_ns, self._max_future_stamp_s)
        if refusal == REFUSE_NEGATIVE_STAMP:
            self._count_drop(refusal, f"camera frame dropped: stamp {stamp_ns / NS_PER_S:.3f} s is before the epoch")
            return
        with self._frame_lock:
            if refusal == REFUSE_FUTURE_STAMP:  # held back: not the newest frame until the clock reaches it
                if self._early is not None:
                    self._discard_early("replaced by a later one")
                self._early = (msg, time.monotonic())
            elif self._frame is None or stamp_ns >= stamp_to_ns(self._frame.header.stamp):
                self._frame = msg
            elif stamp_refusal(stamp_to_ns(self._frame.header.stamp), now_ns, self._max_future_stamp_s):
                # The newest frame is ahead of the clock (promoted by a request stamped ahead): a frame of
                # now wins over it, so it cannot hold the view.
                self._count_drop(REFUSE_FUTURE_STAMP, "newest camera frame is ahead of the clock: replaced")
                self._frame = msg
            self._promote_early(now_ns)
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self._serve_request(waiting)  # served if this frame made it servable, else it waits again

    def _promote_early(self, reference_ns: int) -> None:
        """Make the held-back frame the newest one once ``reference_ns`` has reached its stamp (lock held)."""
        if self._early is None:
            return
        frame, arrived_s = self._early
        stamp_ns = stamp_to_ns(frame.header.stamp)
        if self._frame is not None and stamp_ns <= stamp_to_ns(self._frame.header.stamp):
            self._discard_early("a newer frame arrived first")
        elif time.monotonic() - arrived_s > self._max_frame_age_s:
            self._discard_early(f"the clock did not reach it within max_frame_age_s = {self._max_frame_age_s} s")
        elif stamp_refusal(stamp_ns, reference_ns, self._max_future_stamp_s) is None:
            self._frame, self._early = frame, None

    def _discard_early(self, why: str) -> None:
        frame, _ = self._early
        self._early = None
        ahead_s = (stamp_to_ns(frame.header.stamp) - self.get_clock().now().nanoseconds) / NS_PER_S
        self._count_drop(REFUSE_FUTURE_STAMP, f"camera frame stamped {ahead_s:.3f} s in the future never used "
                         f"({why}; max_future_stamp_s = {self._max_future_stamp_s})")

    def _count_drop(self, reason: str, message: str) -> None:
        """Count a refusal by reason (PolicyStatus) and log it, at most once a second per reason."""
        self.drops.report(reason, message, self.get_logger().warning)

    def _on_instruction(self, msg: String) -> None:
        self._set_instruction(msg.data)

    def _set_instruction(self, text: str) -> None:
        with self._publish_lock:
            if text == self._instruction:
                return
            self._instruction = text
            # Nothing computed for the old instruction may leave the node: drop the queued job, and the
            # in-flight one is checked against the instruction before it is published (same lock).
            try:
                self._jobs.get_nowait()
                self.jobs_replaced += 1
            except queue.Empty:
                pass
            self._waiting = None
        self._policy.reset()
        self.get_logger().info(f"instruction: {instruction_for_log(text)}")

    def _on_request(self, request: InferenceRequest) -> None:
        self.requests_received += 1
        self._serve_request(request)

    def _serve_request(self, request: InferenceRequest) -> None:
        request_ns = stamp_to_ns(request.header.stamp)
        if request_ns < 0:
            self._count_drop(REFUSE_NEGATIVE_STAMP, f"inference request {request.request_id} dropped: stamp "
                             f"{request_ns / NS_PER_S:.3f} s is before the epoch")
            return
        now_ns = self.get_clock().now().nanoseconds
        with self._frame_lock:
            # A frame held back for its stamp is usable once the clock, or this request, has reached it (a
            # replay's request can be ahead of this node's /clock by a step; never trusted further than
            # max_frame_age_s ahead).
            lead_ns = request_ns - now_ns
            self._promote_early(request_ns if 0 < lead_ns <= self._max_frame_age_s * NS_PER_S else now_ns)
            frame = self._frame
        refusal = self._refusal(request, frame)
        if refusal is not None and refusal == self._frame_refusal(request, frame):
            # No usable frame yet: the request waits for the next frame (a newer request replaces it).
            replaced, self._waiting = self._waiting, request
            if replaced is not None and replaced is not request:
                self._count_drop(refusal[0], f"inference request {replaced.request_id} never served: {refusal[1]}")
            self.get_logger().info(f"inference request {request.request_id} waits for a frame: {refusal[1]}",
                                   throttle_duration_sec=DROP_LOG_PERIOD_S)
            return
        if refusal is not None:
            self._count_drop(refusal[0], f"inference request {request.request_id} not served: {refusal[1]}")
            return
        cfg = self._pruning_cfg
        keep = keep_ratio_for_speed(max(0.0, float(request.speed)), cfg.v_pmin, cfg.v_pmax, cfg.min_keep_ratio)
        job = _Job(request, frame, self._instruction, keep)
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            try:
                self._jobs.get_nowait()  # drop the waiting (older) job: newest frame only
                self.jobs_replaced += 1
            except queue.Empty:
                pass
            self._jobs.put_nowait(job)

    def _refusal(self, request: InferenceRequest, frame) -> tuple[str, str] | None:
        """``(reason code, explanation)`` when the request cannot be served now, else None."""
        if not self._instruction:
            return "no_instruction", "no instruction (topic or 'instruction' parameter)"
        if not np.isfinite(request.speed):
            return "non_finite_speed", f"speed is not finite ({request.speed})"
        return self._frame_refusal(request, frame)

    def _frame_refusal(self, request: InferenceRequest, frame) -> tuple[str, str] | None:
        if frame is None:
            return "no_frame", "no camera frame received yet"
        age_s = (stamp_to_ns(request.header.stamp) - stamp_to_ns(frame.header.stamp)) / NS_PER_S
        if age_s > self._max_frame_age_s:
            return "stale_frame", f"newest frame is {age_s:.3f} s old (max_frame_age_s = {self._max_frame_age_s})"
        return None

    # ------------------------------------------------------------------ worker thread
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=WORKER_POLL_S)
            except queue.Empty:
                continue
            self._busy = True
            try:
                self._serve(job)
            except Exception as exc:  # noqa: BLE001 - a bad frame or model error must not kill the worker
                if self._stop.is_set():
                    return
                self._count_drop("inference_failed", f"inference for request {job.request.request_id} failed: {exc}")
            finally:
                self._busy = False
            if not self._stop.is_set():
                self.publish_status()

    def _serve(self, job: _Job) -> None:
        frame = job.frame
        try:
            if isinstance(frame, CompressedImage):
                rgb = compressed_to_rgb(frame.format, frame.data)
            else:
                rgb = image_to_rgb(frame.height, frame.width, frame.encoding, frame.step, frame.data)
        except ValueError as exc:
            self._count_drop(DROP_BAD_IMAGE, f"inference request {job.request.request_id} not served: {exc}")
            return
        t0 = time.perf_counter()
        out = self._policy.predict_chunk(rgb, job.instruction, keep_ratio=job.keep_ratio)
        latency_s = time.perf_counter() - t0
        self._last_latency_s = latency_s
        actions = np.asarray(out.actions, dtype=np.float32)
        if actions.ndim != 2 or not np.isfinite(actions).all():
            raise ValueError(f"policy returned a bad chunk: shape {actions.shape}, finite={np.isfinite(actions).all()}")
        msg = ActionChunk()
        msg.header.stamp = frame.header.stamp
        msg.header.frame_id = self._frame_id
        msg.request_id = job.request.request_id
        msg.instruction_digest = instruction_digest(job.instruction)
        msg.rows, msg.cols = (int(v) for v in actions.shape)
        msg.data = array.array("f", actions.ravel().tobytes())
        msg.source = ActionChunk.SOURCE_MODEL
        msg.keep_ratio = float(getattr(out, "keep_ratio", job.keep_ratio))
        msg.num_vision_tokens = int(getattr(out, "num_vision_tokens", 0))
        msg.model_latency_s = float(getattr(out, "latency_s", latency_s))
        msg.action_rate_hz = float(self._policy.action_rate_hz)
        with self._publish_lock:
            if self._stop.is_set():
                return
            if job.instruction != self._instruction:
                self._count_drop(DROP_INSTRUCTION_CHANGED, f"chunk for request {job.request.request_id} not "
                                 f"published: the instruction changed while the model ran")
                return
            self._chunk_pub.publish(msg)
            self.chunks_published += 1

    def destroy_node(self) -> None:
        if hasattr(self, "_worker"):  # absent when __init__ failed (bad config file): rclpy still destroys us
            self._stop.set()
            self._worker.join(timeout=JOIN_TIMEOUT_S)
        super().destroy_node()


def pruning_specs(path: Path | None = None) -> list:
    """ParamSpecs of every PruningConfig field, defaults from the YAML at ``path`` (default
    ``config/pruning.yaml``; unknown keys are an error)."""
    from_file = dataclass_from_yaml(PruningConfig, path or CONFIG_DIR / PRUNING_FILE)
    return specs_from_dataclass(PruningConfig, PRUNING_FIELDS, PRUNING_RANGES, read_only=PRUNING_READ_ONLY,
                                defaults={f: getattr(from_file, f) for f in PRUNING_FIELDS}, pairs=PRUNING_PAIRS)


def _desc(text: str, read_only: bool, value_range: tuple[float, float] | None = None) -> ParameterDescriptor:
    from rcl_interfaces.msg import FloatingPointRange

    d = ParameterDescriptor(description=text, read_only=read_only)
    if value_range is not None:
        d.floating_point_range = [FloatingPointRange(from_value=value_range[0], to_value=value_range[1], step=0.0)]
    return d


def main(args: list[str] | None = None) -> int:
    exit_without_teardown(spin_node(PolicyNode, args))
    return 0


def exit_without_teardown(rc: int) -> None:
    """Exit now, skipping the interpreter's module teardown (about 1 s once torch is loaded, measured here).

    Called only after rclpy is shut down and the worker has stopped, so nothing is left to release; this
    keeps Ctrl-C of the graph under 1 s.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    raise SystemExit(main())
