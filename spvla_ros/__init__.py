"""spvla: SP-VLA (action-aware model scheduling + spatio-semantic token pruning) for CogACT on a Franka FR3.

``spvla_ros.core`` is ROS-free (numpy/torch); ``spvla_ros.nodes`` holds the thin rclpy wrappers.
"""

__version__ = "0.1.0"
