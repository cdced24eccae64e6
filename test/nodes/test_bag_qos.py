"""spvla bags carry ``offered_qos_profiles`` (issue 17), so ``ros2 bag play`` replays with the right QoS.

Read back from the written metadata (rosbags parses ``metadata.yaml`` as rosbag2 does), for a bag
recorded from a live graph by ``BagRecorder`` and for one written by ``spvla-bag make-bag``.

Regressions pinned:
* ``offered_qos_profiles`` empty: ``ros2 bag play`` then publishes reliable + volatile, and the nodes'
  transient-local instruction subscription never matches, so a replayed instruction is never received;
* a best-effort camera topic recorded as reliable (or the other way round);
* a latched (transient local) sample published before the recorder started missing from the bag.
"""

from __future__ import annotations

import rclpy
import yaml
from geometry_msgs.msg import TwistStamped
from rosbags.interfaces import QosDurability, QosHistory, QosReliability
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image
from std_msgs.msg import String

from spvla_ros.bag.bag_qos import INFINITE_BAG_TIME, bag_qos
from spvla_ros.bag.make_bag import Recording, generated_frames, write_bag
from spvla_ros.bag.recorder import BagRecorder
from spvla_ros.nodes import qos, topics


def _offers(bag) -> dict:
    with Reader(bag) as reader:
        return {c.topic: c.ext.offered_qos_profiles for c in reader.connections}


def test_recorded_bag_holds_what_the_publishers_offered(graph, tmp_path):
    source = graph.add(rclpy.create_node("qos_source", context=graph.context))
    pubs = {
        topics.IMAGE: (source.create_publisher(Image, topics.IMAGE, qos.IMAGE_QOS), Image()),
        topics.INSTRUCTION: (source.create_publisher(String, topics.INSTRUCTION, qos.INSTRUCTION_QOS),
                             String(data="pick up the block")),
        topics.CMD_TWIST: (source.create_publisher(TwistStamped, topics.CMD_TWIST, qos.COMMAND_QOS), TwistStamped()),
    }
    pubs[topics.INSTRUCTION][0].publish(pubs[topics.INSTRUCTION][1])  # latched, before the recorder exists
    out = tmp_path / "rec"
    recorder = graph.add(BagRecorder(out, list(pubs), context=graph.context))
    assert graph.spin_until(lambda: recorder.all_subscribed), "the recorder did not find every topic"
    assert graph.spin_until(lambda: all(p.get_subscription_count() > 0 for p, _ in pubs.values()))
    for topic, (pub, msg) in pubs.items():
        if topic != topics.INSTRUCTION:
            pub.publish(msg)
    assert graph.spin_until(lambda: all(recorder.counts[t] >= 1 for t in pubs)), recorder.counts
    recorder.close()

    offers = _offers(out)
    assert set(offers) == set(pubs)
    for topic, profiles in offers.items():
        assert len(profiles) == 1, (topic, profiles)  # one publisher, one offer
    image, instruction, cmd = (offers[t][0] for t in (topics.IMAGE, topics.INSTRUCTION, topics.CMD_TWIST))
    assert image.reliability == QosReliability.BEST_EFFORT and image.durability == QosDurability.VOLATILE
    assert instruction.reliability == QosReliability.RELIABLE
    assert instruction.durability == QosDurability.TRANSIENT_LOCAL
    assert cmd.reliability == QosReliability.RELIABLE and cmd.durability == QosDurability.VOLATILE
    assert image.deadline == INFINITE_BAG_TIME  # rosbag2's encoding of "no deadline"
    # what ros2 bag play reads: version 9 metadata with the profiles as a list, enum names in lower case
    meta = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9
    written = {t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
               for t in meta["topics_with_message_count"]}
    assert written[topics.INSTRUCTION][0]["durability"] == "transient_local"
    assert written[topics.IMAGE][0]["reliability"] == "best_effort"


def test_made_bag_offers_the_nodes_qos(tmp_path):
    bag = tmp_path / "made"
    rec = Recording(generated_frames(2, 32, 24), 5.0, actions=[[0.0] * 7] * 2, instructions=["a", "a"])
    write_bag(bag, rec)
    offers = _offers(bag)
    assert offers == {topics.IMAGE: [bag_qos(qos.IMAGE_QOS)], topics.INSTRUCTION: [bag_qos(qos.INSTRUCTION_QOS)],
                      topics.RECORDED_ACTION: [bag_qos(qos.STATUS_QOS)]}
    image = offers[topics.IMAGE][0]
    assert (image.history, image.depth, image.reliability) == (QosHistory.KEEP_LAST, 1, QosReliability.BEST_EFFORT)
    assert offers[topics.INSTRUCTION][0].durability == QosDurability.TRANSIENT_LOCAL
