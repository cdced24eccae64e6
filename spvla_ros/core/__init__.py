"""ROS-free core of spvla: scheduler, extrapolation, pruning, policy, safety, data I/O. Never imports rclpy."""
