"""Every topic and service name of the spvla graph, in one place (remap them in the launch file).

Data flows one way: image -> policy -> action chunk -> scheduler -> twist -> safety -> robot.
"""

IMAGE = "/camera/image_raw"  # sensor_msgs/Image, rgb8 or bgr8
IMAGE_COMPRESSED = "/camera/image_raw/compressed"  # sensor_msgs/CompressedImage
INSTRUCTION = "/spvla/instruction"  # std_msgs/String; a new one restarts the schedule
INFERENCE_REQUEST = "/spvla/inference_request"  # scheduler -> policy: run the model on the newest frame
ACTION_CHUNK = "/spvla/action_chunk"  # policy -> scheduler: spvla/msg/ActionChunk
POLICY_STATUS = "/spvla/policy_status"  # spvla/msg/PolicyStatus, latched: ready, counters, drops
SCHEDULER_STATUS = "/spvla/scheduler_status"  # spvla/msg/SchedulerStatus
CMD_TWIST = "/spvla/cmd_twist"  # scheduler -> safety: geometry_msgs/TwistStamped, EE velocity, base frame
SAFE_TWIST = "/spvla/safe_twist"  # safety -> controller (remap to the Franka controller's command topic)
SAFETY_STATUS = "/spvla/safety_status"  # spvla/msg/SafetyStatus
ESTOP = "/spvla/estop"  # std_msgs/Bool; True latches zero output
GRIPPER_COMMAND = "/spvla/gripper_command"  # scheduler -> safety: spvla/msg/GripperCommand, on a state change
SAFE_GRIPPER_COMMAND = "/spvla/safe_gripper_command"  # safety -> gripper node: only while armed
GRIPPER_STATUS = "/spvla/gripper_status"  # spvla/msg/GripperStatus
ROBOT_STATE = "/franka_robot_state_broadcaster/robot_state"  # franka_msgs/FrankaRobotState
CLOCK = "/clock"  # rosgraph_msgs/Clock; published by `spvla-bag play --clock` / `--step` (use_sim_time)
RECORDED_ACTION = "/spvla/recorded_action"  # spvla/msg/ActionChunk (1 row, source "recorded") from a dataset bag
