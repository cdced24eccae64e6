"""The policy node takes its settings from config/pruning.yaml and config/policy.yaml (issue 19 item 4, issue 16).

The node used to call ``load_policy`` without a pruning config: Canny thresholds, semantic mode/mass and position
ids came from dataclass defaults whatever config/pruning.yaml said (a test keeping the YAML equal to the
defaults hid it). Here the node runs a real (tiny) CogACT, the YAML is edited the way a user would (a copy with
other values, named by the ``pruning_config`` parameter), and the tokens the model keeps for a real request
change accordingly; a live parameter change reaches the next model call.

Regressions pinned: the pruning YAML ignored by the node; a live pruning change applied to the keep ratio but
not to the token selection; the resize setting of config/policy.yaml not reaching the policy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from builtin_interfaces.msg import Time
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from spvla.msg import ActionChunk, InferenceRequest

from spvla_ros.core.config_io import CONFIG_DIR, dataclass_from_yaml
from spvla_ros.core.pruning.config import PruningConfig
from spvla_ros.nodes import qos, topics
from spvla_ros.nodes.policy_node import PolicyNode

FAST_SPEED = 5.0
"""Above every v_pmax used here: the keep ratio sits at min_keep_ratio."""
EDITS = {"canny_low": 20.0, "canny_high": 60.0, "semantic_mode": "threshold", "t_ks": 1.5,
         "min_keep_ratio": 0.25, "position_ids": "preserve"}


def _scene() -> np.ndarray:
    """Textured frame with edges in some regions only, so Canny thresholds and attention change the selection."""
    rng = np.random.default_rng(3)
    img = np.full((240, 320, 3), 110, dtype=np.uint8)
    img[30:120, 40:150] = (210, 40, 40)
    img[150:220, 200:300] = rng.integers(0, 256, (70, 100, 3), dtype=np.uint8)
    img[60:200, 180:190] = (60, 200, 60)
    img += rng.integers(0, 12, img.shape, dtype=np.uint8)  # weak texture: only a low Canny threshold sees it
    return img


def _edited_yaml(tmp_path: Path) -> Path:
    data = yaml.safe_load((CONFIG_DIR / "pruning.yaml").read_text())
    assert set(EDITS) <= set(data)
    data.update(EDITS)
    path = tmp_path / "pruning.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _node(graph, *overrides: Parameter) -> PolicyNode:
    params = [Parameter("preset", value="tiny"), Parameter("instruction", value="pick up the red block"), *overrides]
    return graph.add(PolicyNode(context=graph.context, parameter_overrides=params))


def _serve_one(graph, node: PolicyNode) -> tuple[ActionChunk, np.ndarray]:
    """Publish a frame and a fast request as the scheduler would; the chunk and the kept patch indices."""
    kept: list[np.ndarray] = []
    predict = node._policy.predict_chunk

    def recording(image, instruction, keep_ratio=1.0):
        out = predict(image, instruction, keep_ratio)
        kept.append(out.kept_indices)
        return out

    node._policy.predict_chunk = recording
    peer = graph.add(rclpy.create_node(f"peer_{len(graph.nodes)}", context=graph.context))
    chunks: list[ActionChunk] = []
    peer.create_subscription(ActionChunk, topics.ACTION_CHUNK, chunks.append, qos.CHUNK_QOS)
    img_pub = peer.create_publisher(Image, topics.IMAGE, qos.IMAGE_QOS)
    req_pub = peer.create_publisher(InferenceRequest, topics.INFERENCE_REQUEST, qos.REQUEST_QOS)
    assert graph.spin_until(lambda: img_pub.get_subscription_count() > 0 and req_pub.get_subscription_count() > 0
                            and node._chunk_pub.get_subscription_count() > 0)
    frame = _scene()
    img = Image(height=frame.shape[0], width=frame.shape[1], encoding="rgb8", step=frame.shape[1] * 3,
                data=frame.tobytes())
    img.header.stamp = Time(sec=100)
    img_pub.publish(img)
    assert graph.spin_until(lambda: node._frame is not None)
    request = InferenceRequest(request_id=1, for_step=1, speed=FAST_SPEED)
    request.header.stamp = Time(sec=100)
    req_pub.publish(request)
    assert graph.spin_until(lambda: len(chunks) == 1, timeout_s=30.0)
    return chunks[0], kept[0]


def test_default_node_prunes_with_config_pruning_yaml(graph):
    node = _node(graph)
    from_file = dataclass_from_yaml(PruningConfig, CONFIG_DIR / "pruning.yaml")
    assert node._policy.pruning_config == from_file
    assert node._policy.config.resize_interpolation == "pil_bicubic"  # config/policy.yaml
    chunk, kept = _serve_one(graph, node)
    assert chunk.num_vision_tokens == len(kept) == round(256 * from_file.min_keep_ratio)


def test_editing_the_pruning_yaml_changes_what_the_node_prunes(graph, tmp_path):
    default_node = _node(graph)
    _, kept_default = _serve_one(graph, default_node)
    graph.executor.remove_node(default_node)
    default_node.destroy_node()
    graph.nodes.remove(default_node)

    edited = _edited_yaml(tmp_path)
    node = _node(graph, Parameter("pruning_config", value=str(edited)))
    cfg = node._policy.pruning_config
    assert cfg == dataclass_from_yaml(PruningConfig, edited)
    assert {k: getattr(cfg, k) for k in EDITS} == EDITS
    assert node.get_parameter("canny_low").value == EDITS["canny_low"]  # the node's parameters show the file
    chunk, kept = _serve_one(graph, node)
    assert chunk.num_vision_tokens == len(kept) == round(256 * EDITS["min_keep_ratio"])
    assert len(kept_default) == round(256 * PruningConfig().min_keep_ratio) != len(kept)
    # Same frame, same keep ratio, default settings: a different selection (Canny/semantic settings matter).
    node._policy.pruning_config = PruningConfig().with_changes(min_keep_ratio=EDITS["min_keep_ratio"])
    again = node._policy.predict_chunk(_scene(), "pick up the red block", chunk.keep_ratio)
    assert not np.array_equal(again.kept_indices, kept)


def test_a_live_pruning_change_reaches_the_next_model_call(graph):
    node = _node(graph)
    result = node.set_parameters([Parameter("semantic_mode", value="threshold"), Parameter("canny_low", value=5.0),
                                  Parameter("canny_high", value=15.0)])
    assert all(r.successful for r in result)
    cfg = node._policy.pruning_config
    assert (cfg.semantic_mode, cfg.canny_low, cfg.canny_high) == ("threshold", 5.0, 15.0)
    bad = node.set_parameters([Parameter("canny_high", value=1.0)])  # below canny_low: refused, nothing changes
    assert not bad[0].successful and "canny_high" in bad[0].reason
    assert node._policy.pruning_config.canny_high == 15.0
    readonly = node.set_parameters([Parameter("patch_size", value=16)])
    assert not readonly[0].successful


def test_bad_pruning_yaml_or_resize_refuses_to_start(graph, tmp_path):
    bad = tmp_path / "pruning.yaml"
    bad.write_text("canny_lo: 10.0\n")
    with pytest.raises(ValueError, match="canny_lo"):
        _node(graph, Parameter("pruning_config", value=str(bad)))
    with pytest.raises(ValueError, match="resize_interpolation"):
        _node(graph, Parameter("resize_interpolation", value="area"))
    node = _node(graph, Parameter("resize_interpolation", value="cv2_area"))
    assert node._policy.config.resize_interpolation == "cv2_area"
