"""``spvla-bag``: make, play and record rosbag2 files for spvla without a ROS install.

Examples::

    spvla-bag make-bag --images ../shared/data/real_images --rate-hz 5 --size 320x240 --out frames.bag
    spvla-bag make-bag --npz ../shared/data/bridge_debug_25ep.npz --episodes 3 --out bridge.bag
    spvla-bag make-bag --generated 40 --out test.bag
    spvla-bag play frames.bag                 # real time, stamps rewritten to now (once the policy is ready)
    spvla-bag play frames.bag --step          # deterministic, drives /clock (graph with use_sim_time)
    spvla-bag record out.bag --topics /spvla/cmd_twist /spvla/scheduler_status --duration 10
"""

from __future__ import annotations

import argparse
import sys

from rclpy.utilities import remove_ros_args

from spvla_ros.nodes import topics

DEFAULT_RECORD_TOPICS = [topics.CMD_TWIST, topics.SCHEDULER_STATUS, topics.ACTION_CHUNK, topics.SAFE_TWIST]


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from exc
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spvla-bag", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("make-bag", help="write a bag of camera frames (+ recorded actions, instructions)")
    src = m.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of PNG/JPEG frames (sorted by name)")
    src.add_argument("--npz", help="BridgeData-style npz (frames, actions, episode, instructions)")
    src.add_argument("--generated", type=int, metavar="N", help="N generated test frames (no data needed)")
    m.add_argument("--out", required=True, help="bag directory to create")
    m.add_argument("--rate-hz", type=float, default=5.0, help="frame rate [Hz] (Bridge: 5)")
    m.add_argument("--size", type=_size, default=None, help="resize frames to WIDTHxHEIGHT")
    m.add_argument("--episodes", type=int, default=None, help="npz: first N episodes only")
    m.add_argument("--repeat", type=int, default=1, help="write the frames this many times in a row")
    m.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")

    pl = sub.add_parser("play", help="publish a bag into the graph")
    pl.add_argument("bag")
    pl.add_argument("--step", action="store_true", help="deterministic step-by-step mode driving /clock")
    pl.add_argument("--rate", type=float, default=1.0, help="real time: speed factor")
    pl.add_argument("--clock-hz", type=float, default=0.0, help="real time: publish /clock at this rate, keep stamps")
    pl.add_argument("--loops", type=int, default=1, help="real time: play the bag this many times")
    pl.add_argument("--settle-s", type=float, default=0.02, help="step: wait after publishing a frame [s]")
    pl.add_argument("--ack-timeout-s", type=float, default=10.0, help="step: bound on waiting for the graph [s]")
    pl.add_argument("--wait-ready-s", type=float, default=300.0,
                    help="bound on waiting for the policy node's ready status on /spvla/policy_status; play "
                         "fails (exit 4) when it does not come [s]")
    pl.add_argument("--no-wait-ready", dest="wait_ready", action="store_false",
                    help="do not wait for the policy (a graph without the spvla policy node)")
    pl.add_argument("--wait-s", type=float, default=15.0,
                    help="bound on waiting for the camera topic's subscriber, after the policy is ready [s]")
    pl.add_argument("--start-delay-s", type=float, default=1.0,
                    help="wait this long once the subscribers are there, so that every pair of processes has "
                         "discovered each other (a subscriber seen by the player may not yet be matched with "
                         "the graph's publishers) [s]")
    pl.add_argument("--require-subscribers", nargs="+", default=[], metavar="TOPIC=N",
                    help="before playing, wait (bounded by --wait-s) until TOPIC has N subscribers, e.g. a "
                         "recorder on /spvla/cmd_twist; fails if they do not appear")

    r = sub.add_parser("record", help="record topics of the running graph")
    r.add_argument("out", help="bag directory to create")
    r.add_argument("--topics", nargs="+", default=DEFAULT_RECORD_TOPICS)
    r.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    r.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    return p


def run_make_bag(args: argparse.Namespace) -> int:
    from spvla_ros.bag.make_bag import Recording, frames_from_folder, generated_frames, recording_from_npz, write_bag

    if args.images:
        rec = Recording(frames_from_folder(args.images, args.size), args.rate_hz)
    elif args.npz:
        rec = recording_from_npz(args.npz, args.rate_hz, args.episodes)
    else:
        w, h = args.size or (320, 240)
        rec = Recording(generated_frames(args.generated, w, h), args.rate_hz)
    if args.size and not args.images:
        import cv2

        rec.frames = [cv2.resize(f, args.size, interpolation=cv2.INTER_AREA) for f in rec.frames]
    n = write_bag(args.out, rec, storage=args.storage, repeat=args.repeat)
    print(f"wrote {n} frames at {args.rate_hz:g} Hz to {args.out}")
    return 0


def run_play(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from spvla_ros.bag.player import BagPlayer, read_bag

    messages = read_bag(args.bag)
    required = {}
    for item in args.require_subscribers:
        topic, _, count = item.partition("=")
        required[topic] = int(count or 1)
    rclpy.init()
    player = BagPlayer(messages)
    try:
        if args.wait_ready and not player.wait_for_policy_ready(args.wait_ready_s):
            print(f"spvla-bag play: the policy is not ready after {args.wait_ready_s:g} s (no ready status on "
                  f"{topics.POLICY_STATUS}); is spvla_policy running? Its log says why it did not start. "
                  "Nothing was played (--wait-ready-s raises the bound; --no-wait-ready plays without a policy)",
                  file=sys.stderr)
            return 4
        for topic, count in required.items():
            if not player.wait_for_subscribers(topic, args.wait_s, count):
                print(f"spvla-bag play: {topic} has fewer than {count} subscribers after {args.wait_s} s",
                      file=sys.stderr)
                return 3
        if not player.wait_for_subscribers(topics.IMAGE, args.wait_s):
            player.get_logger().warning(f"no subscriber on {topics.IMAGE} after {args.wait_s} s; playing anyway")
        player.spin_for(args.start_delay_s)
        if args.step:
            steps = player.play_steps(args.settle_s, args.ack_timeout_s)
            print(f"played {player.published} messages in {steps} clock steps")
        else:
            player.play_realtime(args.rate, args.clock_hz, args.loops)
            print(f"played {player.published} messages")
        return 0
    except TimeoutError as exc:
        print(f"spvla-bag play: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        player.destroy_node()
        rclpy.try_shutdown()


def run_record(args: argparse.Namespace) -> int:
    from spvla_ros.bag.recorder import record

    counts = record(args.out, args.topics, args.duration, args.storage)
    print("recorded " + ", ".join(f"{t}: {n}" for t, n in counts.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = remove_ros_args(sys.argv if argv is None else ["spvla-bag", *argv])[1:]
    args = build_parser().parse_args(argv)
    return {"make-bag": run_make_bag, "play": run_play, "record": run_record}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
