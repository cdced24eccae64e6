"""spvla-bag make-bag: frames (and a dataset's actions/instructions) at their true rate in a real rosbag2.

Regressions pinned: wrong frame spacing; channel order swapped on the way into the bag; recorded actions
or instructions misaligned with their frames; mixed frame sizes accepted; a bag that rosbags cannot read.
"""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from spvla_ros.bag.make_bag import Recording, generated_frames, recording_from_npz, write_bag
from spvla_ros.bag.typestore import spvla_typestore
from spvla_ros.core.image_convert import image_to_rgb
from spvla_ros.nodes import topics

NS = 1_000_000_000


def _read(bag):
    store = spvla_typestore()
    out = {}
    with Reader(bag) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, store.deserialize_cdr(raw, conn.msgtype)))
    return out


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_generated_frames_round_trip_at_their_rate(tmp_path, storage):
    frames = generated_frames(6, 32, 24)
    n = write_bag(tmp_path / "b", Recording(frames, 4.0), start_s=1000.0, storage=storage, repeat=2)
    assert n == 12
    images = _read(tmp_path / "b")[topics.IMAGE]
    stamps = [m.header.stamp.sec * NS + m.header.stamp.nanosec for _, m in images]
    assert stamps[0] == 1000 * NS and set(np.diff(stamps).tolist()) == {NS // 4}
    assert [t for t, _ in images] == stamps
    for i, (_, m) in enumerate(images):
        rgb = image_to_rgb(m.height, m.width, m.encoding, m.step, m.data.tobytes())
        np.testing.assert_array_equal(rgb, frames[i % 6])


def test_bridge_npz_frames_actions_and_instructions_are_aligned(tmp_path, bridge_npz):
    rec = recording_from_npz(bridge_npz, 5.0, episodes=2)
    write_bag(tmp_path / "b", rec)
    msgs = _read(tmp_path / "b")
    data = np.load(bridge_npz)
    keep = np.isin(data["episode"], np.unique(data["episode"])[:2])
    images, actions = msgs[topics.IMAGE], msgs[topics.RECORDED_ACTION]
    assert len(images) == len(actions) == int(keep.sum())
    for (ti, img), (ta, act), frame, action in zip(images, actions, data["frames"][keep], data["actions"][keep],
                                                   strict=True):
        assert ti == ta and act.header.stamp == img.header.stamp and act.source == "recorded"
        np.testing.assert_array_equal(image_to_rgb(img.height, img.width, img.encoding, img.step,
                                                   img.data.tobytes()), frame)
        np.testing.assert_array_equal(act.data, action.astype(np.float32))
    instructions = [m.data for _, m in msgs[topics.INSTRUCTION]]
    assert instructions == [str(s) for s in data["instructions"][:2]]


def test_mixed_sizes_and_bad_rates_are_refused(tmp_path):
    frames = [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)]
    with pytest.raises(ValueError, match="same size"):
        write_bag(tmp_path / "a", Recording(frames, 5.0))
    with pytest.raises(ValueError, match="rate"):
        write_bag(tmp_path / "b", Recording(frames[:1], 0.0))
