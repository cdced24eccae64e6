"""QoS of every spvla topic, chosen per data kind (one place; the README's table is written from here).

* Images: sensor-data QoS (best effort, keep last 1, volatile). A late frame is worthless: the policy
  only ever uses the newest one, so no retransmission and no queue. Camera-sized best-effort samples
  need the Fast DDS SHM profile in ``config/fastdds_shm.xml`` (set by the bring-up); with the default
  transports most fragments of a 640x480 frame are lost over UDP (toolchain notes §4).
* Commands (twists to safety and to the controller): reliable, keep last 50, volatile. Every command is
  delivered; 50 holds the burst a simulated-clock jump produces (0.5 s at 100 Hz), and a subscriber that
  keeps up never sees a backlog (the safety node also rejects stale stamps).
* Inference requests and action chunks: reliable, keep last 1 (a newer request/chunk supersedes the
  older one).
* Status messages: reliable, keep last 10, volatile (monitoring, rqt plots, rosbag record).
* Instruction: reliable, keep last 1, transient local ("latched"): a node started after the instruction
  was published still gets it.
* Policy status: reliable, keep last 1, transient local: a bag player or a monitor started later still
  sees whether the policy is ready.
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

IMAGE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=qos_profile_sensor_data.reliability,
    durability=qos_profile_sensor_data.durability,
)
COMMAND_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
REQUEST_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
CHUNK_QOS = REQUEST_QOS
STATUS_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
INSTRUCTION_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
GRIPPER_QOS = QoSProfile(  # rare events: every one must arrive, in order
    history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
POLICY_STATUS_QOS = INSTRUCTION_QOS
