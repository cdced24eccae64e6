"""Policy node with a test-double policy: request/answer, keep ratio from speed, newest frame only,
inference off the executor thread, bad input refused with a reason.

Regressions pinned: a chunk stamped with the publish time instead of the image time; BGR frames fed to
the model as RGB; the executor blocked for a model call; a backlog of requests served one by one; a
stale frame or an unsupported encoding producing a chunk; the worker dying after a bad frame.
"""

from __future__ import annotations

import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from fake_policy import CHUNK_ROWS, FakePolicy
from sensor_msgs.msg import Image
from spvla.msg import ActionChunk, InferenceRequest

from spvla_ros.core.pruning.keep_ratio import keep_ratio_for_speed
from spvla_ros.nodes import qos, topics
from spvla_ros.nodes.policy_node import PolicyNode


def _image(stamp_s: float, encoding: str = "bgr8", value=(10, 20, 30)) -> Image:
    h, w = 4, 6
    px = np.zeros((h, w, 3), np.uint8)
    px[:] = value
    msg = Image(height=h, width=w, encoding=encoding, step=w * 3, data=px.tobytes())
    msg.header.stamp = Time(sec=int(stamp_s), nanosec=int(round((stamp_s % 1) * 1e9)))
    return msg


def _request(rid: int, stamp_s: float, speed: float) -> InferenceRequest:
    msg = InferenceRequest(request_id=rid, for_step=rid, speed=speed)
    msg.header.stamp = Time(sec=int(stamp_s), nanosec=int(round((stamp_s % 1) * 1e9)))
    return msg


def _setup(graph, policy):
    node = graph.add(PolicyNode(policy=policy, context=graph.context))
    peer = graph.add(rclpy.create_node("peer", context=graph.context))
    chunks: list[ActionChunk] = []
    peer.create_subscription(ActionChunk, topics.ACTION_CHUNK, chunks.append, qos.CHUNK_QOS)
    img_pub = peer.create_publisher(Image, topics.IMAGE, qos.IMAGE_QOS)
    req_pub = peer.create_publisher(InferenceRequest, topics.INFERENCE_REQUEST, qos.REQUEST_QOS)
    assert graph.spin_until(lambda: img_pub.get_subscription_count() > 0 and req_pub.get_subscription_count() > 0
                            and node.count_publishers(topics.ACTION_CHUNK) > 0 and
                            node._chunk_pub.get_subscription_count() > 0)
    return node, chunks, img_pub, req_pub


def _send_frame(graph, node, img_pub, msg):
    img_pub.publish(msg)
    assert graph.spin_until(lambda: node._frame is not None and node._frame.header.stamp == msg.header.stamp)


def test_request_answered_with_image_stamp_and_speed_driven_keep_ratio(graph):
    policy = FakePolicy()
    node, chunks, img_pub, req_pub = _setup(graph, policy)
    node._instruction = "put the spoon in the pot"
    _send_frame(graph, node, img_pub, _image(1000.2, "bgr8", (10, 20, 30)))
    req_pub.publish(_request(7, 1000.25, speed=0.6))
    assert graph.spin_until(lambda: len(chunks) == 1)
    c = chunks[0]
    assert (c.header.stamp.sec, c.header.stamp.nanosec) == (1000, 200_000_000)
    assert c.request_id == 7 and (c.rows, c.cols) == (CHUNK_ROWS, 7)
    assert c.source == ActionChunk.SOURCE_MODEL and c.action_rate_hz == 5.0
    expected_keep = keep_ratio_for_speed(0.6, 0.25, 0.75, 0.5)
    assert abs(c.keep_ratio - expected_keep) < 1e-6 and expected_keep < 1.0
    np.testing.assert_allclose(np.asarray(c.data).reshape(CHUNK_ROWS, 7)[0], policy.base, atol=1e-6)
    shape, instruction, keep = policy.calls[0]
    assert shape == (4, 6, 3) and instruction == "put the spoon in the pot"
    assert abs(keep - expected_keep) < 1e-9


def test_bgr_frame_reaches_the_model_as_rgb(graph):
    seen = []

    class Recording(FakePolicy):
        def predict_chunk(self, image, instruction, keep_ratio=1.0):
            seen.append(image.copy())
            return super().predict_chunk(image, instruction, keep_ratio)

    node, chunks, img_pub, req_pub = _setup(graph, Recording())
    node._instruction = "stack the cubes"
    _send_frame(graph, node, img_pub, _image(5.0, "bgr8", (10, 20, 30)))
    req_pub.publish(_request(1, 5.0, 0.0))
    assert graph.spin_until(lambda: len(chunks) == 1)
    assert tuple(seen[0][0, 0]) == (30, 20, 10)


def test_compressed_png_frame_is_decoded_for_the_model(graph):
    from sensor_msgs.msg import CompressedImage

    from spvla_ros.core.image_convert import rgb_to_compressed

    seen = []

    class Recording(FakePolicy):
        def predict_chunk(self, image, instruction, keep_ratio=1.0):
            seen.append(image.copy())
            return super().predict_chunk(image, instruction, keep_ratio)

    node, chunks, _, req_pub = _setup(graph, Recording())
    node._instruction = "fold the cloth"
    peer = graph.nodes[1]
    pub = peer.create_publisher(CompressedImage, topics.IMAGE_COMPRESSED, qos.IMAGE_QOS)
    assert graph.spin_until(lambda: pub.get_subscription_count() > 0)
    rgb = np.random.default_rng(0).integers(0, 255, (8, 10, 3), dtype=np.uint8)
    fmt, data = rgb_to_compressed(rgb, "png")
    msg = CompressedImage(format=fmt, data=data)
    msg.header.stamp = Time(sec=30)
    pub.publish(msg)
    assert graph.spin_until(lambda: node._frame is not None)
    req_pub.publish(_request(1, 30.0, 0.0))
    assert graph.spin_until(lambda: len(chunks) == 1)
    np.testing.assert_array_equal(seen[0], rgb)


def test_stale_frame_waits_for_a_fresh_one_and_bad_encoding_gives_no_chunk(graph):
    node, chunks, img_pub, req_pub = _setup(graph, FakePolicy())
    node._instruction = "open the drawer"
    _send_frame(graph, node, img_pub, _image(10.0))
    req_pub.publish(_request(1, 12.0, 0.0))  # newest frame 2 s old > max_frame_age_s 1.0: must not be used
    assert graph.spin_until(lambda: node._waiting is not None)
    graph.spin_for(0.2)
    assert chunks == []
    _send_frame(graph, node, img_pub, _image(12.1))  # a fresh frame serves the waiting request
    assert graph.spin_until(lambda: len(chunks) == 1)
    stamp = chunks[0].header.stamp
    assert chunks[0].request_id == 1 and (stamp.sec, stamp.nanosec) == (12, 100_000_000)
    _send_frame(graph, node, img_pub, _image(13.0, "mono8"))
    req_pub.publish(_request(2, 13.0, 0.0))
    graph.spin_for(0.3)
    _send_frame(graph, node, img_pub, _image(14.0))
    req_pub.publish(_request(3, 14.0, 0.0))
    assert graph.spin_until(lambda: len(chunks) >= 2)
    graph.spin_for(0.2)
    assert [c.request_id for c in chunks] == [1, 3]  # 2 (mono8) refused; the worker survived it


def test_inference_runs_off_the_executor_and_only_the_newest_request_waits(graph):
    policy = FakePolicy(latency_s=0.4)
    node, chunks, img_pub, req_pub = _setup(graph, policy)
    node._instruction = "wipe the table"
    _send_frame(graph, node, img_pub, _image(20.0))
    node._on_request(_request(1, 20.01, 0.0))
    assert graph.spin_until(lambda: len(policy.calls) == 1)  # the worker is busy with request 1
    t0 = time.perf_counter()
    for rid in (2, 3, 4):
        node._on_request(_request(rid, 20.0 + rid * 0.01, 0.0))
    callback_s = time.perf_counter() - t0
    assert callback_s < 0.05, f"request callbacks took {callback_s:.3f} s: inference blocks the executor"
    assert graph.spin_until(lambda: len(chunks) == 2, timeout_s=5.0)
    graph.spin_for(0.5)
    ids = [c.request_id for c in chunks]
    assert ids == [1, 4], ids  # 2 and 3 were replaced while 1 ran, never run
    assert node.jobs_replaced == 2
