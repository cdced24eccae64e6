"""Write a rosbag2 of camera frames at their true rate (from an image folder, a BridgeData npz, or a
generated test pattern), with the dataset's recorded actions and instructions when it has them.

Topics (``spvla_ros.nodes.topics``): ``IMAGE`` (sensor_msgs/Image rgb8, frame ``camera``),
``INSTRUCTION`` (std_msgs/String, at each episode start) and ``RECORDED_ACTION`` (spvla/msg/ActionChunk,
1 row, source ``recorded``, stamped like the frame it belongs to). Stamps start at ``start_s`` (default
1000 s; simulated time 0 means "no clock yet" in ROS) and advance by ``1 / rate_hz``. Each topic's
``offered_qos_profiles`` is the profile the spvla nodes use for it (``ros2 bag play`` replays with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from spvla_ros.bag.bag_qos import bag_qos, topic_qos
from spvla_ros.bag.typestore import spvla_typestore
from spvla_ros.core.image_convert import check_rgb, rgb_to_image_fields
from spvla_ros.core.instruction import instruction_digest
from spvla_ros.core.stamps import NS_PER_S, ns_to_sec_nanosec
from spvla_ros.nodes import topics

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
DEFAULT_START_S = 1000.0
CAMERA_FRAME = "camera"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


@dataclass
class Recording:
    """Frames and what goes with them.

    Attributes:
        frames: list of (H, W, 3) uint8 RGB, all the same size.
        rate_hz: frames per second.
        actions: (N, 7) recorded actions, one per frame, or None.
        instructions: one per frame (the episode's), or None.
    """

    frames: list[np.ndarray]
    rate_hz: float
    actions: np.ndarray | None = None
    instructions: list[str] | None = None


def frames_from_folder(folder: str | Path, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Every image in ``folder`` (sorted by name) as RGB, resized to ``size`` = (width, height) or to the
    first image's size so the stream has one size, like a camera's."""
    import cv2

    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    frames = []
    for p in paths:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read image {p}")
        if size is None:
            size = (bgr.shape[1], bgr.shape[0])
        if (bgr.shape[1], bgr.shape[0]) != size:
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        frames.append(np.ascontiguousarray(bgr[..., ::-1]))
    return frames


def recording_from_npz(path: str | Path, rate_hz: float = 5.0, episodes: int | None = None) -> Recording:
    """A BridgeData-style npz (``frames`` (N,H,W,3) uint8, ``actions`` (N,7), ``episode`` (N,),
    ``instructions`` (E,)) as a recording; ``episodes`` keeps the first ones only. Bridge is 5 Hz."""
    with np.load(path, allow_pickle=False) as data:
        missing = {"frames", "actions", "episode"} - set(data.files)
        if missing:
            raise ValueError(f"{path} lacks keys {sorted(missing)}")
        frames, actions, episode = data["frames"], data["actions"], data["episode"]
        instructions = data["instructions"] if "instructions" in data.files else None
    ids = np.unique(episode)
    if episodes is not None:
        ids = ids[:episodes]
    keep = np.isin(episode, ids)
    per_frame = None
    if instructions is not None:
        per_frame = [str(instructions[np.searchsorted(np.unique(episode), e)]) for e in episode[keep]]
    return Recording([check_rgb(f) for f in frames[keep]], rate_hz, actions[keep].astype(np.float32), per_frame)


def generated_frames(count: int, width: int = 320, height: int = 240, seed: int = 0) -> list[np.ndarray]:
    """Generated frames (used when no real images are around): a textured table with a moving block."""
    rng = np.random.default_rng(seed)
    base = (rng.integers(60, 200, size=(height // 8, width // 8, 3), dtype=np.uint8)
            .repeat(8, axis=0).repeat(8, axis=1))
    frames = []
    for i in range(count):
        f = base.copy()
        x = int((i * 7) % max(1, width - 40))
        f[height // 2 - 20 : height // 2 + 20, x : x + 40] = (200, 30, 30)
        frames.append(f)
    return frames


def write_bag(out: str | Path, rec: Recording, start_s: float = DEFAULT_START_S, storage: str = "mcap",
              repeat: int = 1) -> int:
    """Write ``rec`` (``repeat`` times in a row) to a new bag directory ``out``; returns the frame count."""
    if rec.rate_hz <= 0 or not np.isfinite(rec.rate_hz):
        raise ValueError(f"rate_hz must be finite and > 0, got {rec.rate_hz}")
    if not rec.frames:
        raise ValueError("no frames to write")
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
    size = rec.frames[0].shape
    if any(f.shape != size for f in rec.frames):
        raise ValueError("all frames must have the same size (a camera stream)")
    ts = spvla_typestore()
    T = ts.types
    Image, String, Chunk = T["sensor_msgs/msg/Image"], T["std_msgs/msg/String"], T["spvla/msg/ActionChunk"]
    Header, Time = T["std_msgs/msg/Header"], T["builtin_interfaces/msg/Time"]
    n = 0
    with Writer(Path(out), version=9, storage_plugin=STORAGES[storage]) as writer:
        def connect(topic: str, msgtype: str):
            return writer.add_connection(topic, msgtype, typestore=ts, offered_qos_profiles=[bag_qos(topic_qos(topic))])

        c_img = connect(topics.IMAGE, Image.__msgtype__)
        c_ins = connect(topics.INSTRUCTION, String.__msgtype__)
        c_act = connect(topics.RECORDED_ACTION, Chunk.__msgtype__) if rec.actions is not None else None
        last_instruction = None
        for _ in range(repeat):
            for i, frame in enumerate(rec.frames):
                t_ns = round(start_s * NS_PER_S) + round(n * NS_PER_S / rec.rate_hz)
                header = Header(stamp=Time(*ns_to_sec_nanosec(t_ns)), frame_id=CAMERA_FRAME)
                if rec.instructions is not None and rec.instructions[i] != last_instruction:
                    last_instruction = rec.instructions[i]
                    writer.write(c_ins, t_ns, ts.serialize_cdr(String(data=last_instruction), String.__msgtype__))
                h, w, enc, step, data = rgb_to_image_fields(frame)
                img = Image(header=header, height=h, width=w, encoding=enc, is_bigendian=0, step=step,
                            data=np.frombuffer(data, dtype=np.uint8))
                writer.write(c_img, t_ns, ts.serialize_cdr(img, Image.__msgtype__))
                if c_act is not None:
                    digest = instruction_digest(rec.instructions[i]) if rec.instructions is not None else ""
                    act = Chunk(header=header, request_id=0, instruction_digest=digest, rows=1, cols=7,
                                data=np.asarray(rec.actions[i], dtype=np.float32), source="recorded",
                                keep_ratio=1.0, num_vision_tokens=0, model_latency_s=0.0,
                                action_rate_hz=float(rec.rate_hz))
                    writer.write(c_act, t_ns, ts.serialize_cdr(act, Chunk.__msgtype__))
                n += 1
    return n
