"""The command stream against a simulated model slower or faster than one action step.

A simulated CogACT answers every request after a fixed latency, one request at a time (like the policy
node's worker), on the newest frame of a camera at ``--camera-hz``; the scheduler is set so that every
step wants the model (the paper's per-axis rule never approves motion along x only). Everything runs on the
stream clock (integer ns, no sleeps), event by event: each command tick, and each answer the moment it
lands, after which the scheduler node would call :meth:`CommandStream.poll_request`.

Figures per latency: model duty cycle (busy time / duration), request rate and its ratio to the most the
schedule can use, ``min(action_rate_hz, 1 / latency)``, the late-row fraction (model steps served by a
chunk an earlier step already used), wait steps, and the mean age of the image behind the rows executed.

Example::

    spvla-bench model-latency --json latency.json --plot latency.png
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

import numpy as np

from spvla_ros.bench.report_io import format_table, machine_info, write_json
from spvla_ros.core.command_stream import NS_PER_S, CommandStream, Request, StreamConfig, make_chunk
from spvla_ros.core.scheduler_config import SchedulerConfig

HELP = "command stream vs a simulated model of fixed latency: duty cycle, request rate, late rows"
LATENCIES_S = (0.1, 0.15, 0.21, 0.27, 0.35)
T0_NS = 1000 * NS_PER_S
CHUNK_ROWS = 16
ROW = (0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
"""Every row: 1 cm/step along x (the per-axis rule never extrapolates it: every step wants the model)."""


@dataclass
class LatencyRun:
    """Figures of one simulated run."""

    latency_s: float
    duration_s: float
    requests: int
    chunks: int
    request_rate_hz: float
    max_useful_rate_hz: float  # min(action_rate_hz, 1 / latency)
    rate_ratio: float  # request_rate_hz / max_useful_rate_hz
    model_duty_cycle: float
    model_steps: int
    late_chunk_steps: int
    late_row_fraction: float
    wait_steps: int
    mean_image_age_s: float  # step start - image stamp of the chunk it executed, over model steps


class SimulatedModel:
    """One request at a time after ``latency_ns``; a request arriving while busy replaces the waiting one."""

    def __init__(self, latency_ns: int, camera_period_ns: int) -> None:
        self.latency_ns = latency_ns
        self.camera_period_ns = camera_period_ns
        self.busy_until: int | None = None
        self.serving: tuple[Request, int] | None = None  # (request, image stamp)
        self.waiting: Request | None = None
        self.busy_ns = 0

    def submit(self, request: Request, now_ns: int) -> None:
        if self.serving is None:
            self._start(request, now_ns)
        else:
            self.waiting = request

    def _start(self, request: Request, now_ns: int) -> None:
        frame = T0_NS + (now_ns - T0_NS) // self.camera_period_ns * self.camera_period_ns  # newest frame
        self.serving = (request, frame)
        self.busy_until = now_ns + self.latency_ns

    def finish(self, end_ns: int):
        """The chunk answering the request served (at ``busy_until``), and start the waiting one."""
        request, frame = self.serving
        done = self.busy_until
        self.busy_ns += min(done, end_ns) - max(done - self.latency_ns, T0_NS)
        self.serving = self.busy_until = None
        if self.waiting is not None:
            waiting, self.waiting = self.waiting, None
            self._start(waiting, done)
        return make_chunk(np.tile(ROW, (CHUNK_ROWS, 1)), frame, 5.0, request.request_id,
                          model_latency_s=self.latency_ns / NS_PER_S)


def simulate(latency_s: float, duration_s: float = 20.0, camera_hz: float = 30.0,
             stream: StreamConfig | None = None) -> LatencyRun:
    """Run the stream for ``duration_s`` of stream time against a model of ``latency_s``."""
    stream = stream or StreamConfig()
    core = CommandStream(SchedulerConfig(), stream)
    model = SimulatedModel(round(latency_s * NS_PER_S), round(NS_PER_S / camera_hz))
    end = T0_NS + round(duration_s * NS_PER_S)
    tick_ns = NS_PER_S / stream.command_rate_hz
    ages = []
    t = T0_NS
    while t <= end:
        answer = model.busy_until
        next_tick = T0_NS if core.processed_until_ns is None else core.processed_until_ns + round(tick_ns)
        if answer is not None and answer <= next_tick and answer <= end:
            out = core.advance_to(answer - 1)  # an answer landing on a tick is there for that tick's step
            t = answer
            core.on_chunk(model.finish(end))
            request = core.poll_request()  # what the node does in its chunk callback
            if request is not None:
                model.submit(request, t)
        else:
            t = next_tick
            if t > end:
                break
            out = core.advance_to(t)
            for request in out.requests:
                model.submit(request, t)
        ages += [(s.stamp_ns - s.chunk_image_stamp_ns) / NS_PER_S for s in out.steps
                 if s.chunk_image_stamp_ns is not None]
    if model.serving is not None:
        model.busy_ns += end - max(model.busy_until - model.latency_ns, T0_NS)
    c = core.counters
    rate = c.requests_sent / duration_s
    useful = min(stream.action_rate_hz, 1.0 / latency_s)
    return LatencyRun(
        latency_s=latency_s, duration_s=duration_s, requests=c.requests_sent, chunks=c.chunks_received,
        request_rate_hz=rate, max_useful_rate_hz=useful, rate_ratio=rate / useful,
        model_duty_cycle=model.busy_ns / (end - T0_NS), model_steps=c.model_steps,
        late_chunk_steps=c.late_chunk_steps,
        late_row_fraction=c.late_chunk_steps / c.model_steps if c.model_steps else float("nan"),
        wait_steps=c.wait_steps, mean_image_age_s=float(np.mean(ages)) if ages else float("nan"),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latencies", default=",".join(f"{v:g}" for v in LATENCIES_S),
                        help="model latencies to simulate, s, comma-separated")
    parser.add_argument("--duration", type=float, default=20.0, help="stream time per latency, s")
    parser.add_argument("--camera-hz", type=float, default=30.0, help="camera frame rate, Hz")
    parser.add_argument("--action-rate-hz", type=float, default=StreamConfig().action_rate_hz,
                        help="action steps per second of the stream")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    parser.add_argument("--plot", default=None, help="write request rate and duty cycle per latency to this PNG")


def run(args: argparse.Namespace) -> int:
    latencies = [float(v) for v in args.latencies.split(",") if v.strip()]
    if not latencies or min(latencies) <= 0:
        raise SystemExit("--latencies must be positive numbers")
    stream = StreamConfig(action_rate_hz=args.action_rate_hz)
    runs = [simulate(lat, args.duration, args.camera_hz, stream) for lat in latencies]
    payload = {
        "action_rate_hz": stream.action_rate_hz,
        "command_rate_hz": stream.command_rate_hz,
        "camera_hz": args.camera_hz,
        "duration_s": args.duration,
        "runs": [asdict(r) for r in runs],
        "min_rate_ratio": min(r.rate_ratio for r in runs),
        "machine": machine_info(),
    }
    print(f"stream {stream.action_rate_hz:g} Hz actions, {stream.command_rate_hz:g} Hz commands; camera "
          f"{args.camera_hz:g} Hz; {args.duration:g} s of stream time per latency; every step wants the model")
    print(format_table(
        ["latency_s", "requests", "request_hz", "max_useful_hz", "ratio", "model_duty", "late_row_frac",
         "wait_steps", "image_age_s"],
        [[r.latency_s, r.requests, r.request_rate_hz, r.max_useful_rate_hz, r.rate_ratio, r.model_duty_cycle,
          r.late_row_fraction, r.wait_steps, r.mean_image_age_s] for r in runs],
    ))
    if args.json:
        write_json(args.json, payload)
        print(f"wrote {args.json}")
    if args.plot:
        _plot(runs, payload, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _plot(runs: list[LatencyRun], payload: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = [r.latency_s for r in runs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.6, 4.0))
    ax1.plot(lat, [r.request_rate_hz for r in runs], "o-", label="request rate")
    ax1.plot(lat, [r.max_useful_rate_hz for r in runs], "k--", label="min(action rate, 1/latency)")
    ax1.plot(lat, [0.9 * r.max_useful_rate_hz for r in runs], "k:", label="90 %")
    ax1.set_xlabel("model latency [s]")
    ax1.set_ylabel("requests per second")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.plot(lat, [r.model_duty_cycle for r in runs], "o-", label="model duty cycle")
    ax2.plot(lat, [r.late_row_fraction for r in runs], "s-", label="late-row fraction")
    ax2.set_xlabel("model latency [s]")
    ax2.set_ylim(0, 1.05)
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    m = payload["machine"]
    fig.suptitle(f"command stream at {payload['action_rate_hz']:g} Hz vs a simulated model", fontsize=10)
    fig.text(0.01, 0.01, f"{m['date_utc']} UTC | spvla-bench model-latency (stream clock, no sleeps)", fontsize=6)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    fig.savefig(path, dpi=120)
    plt.close(fig)
