"""Ways to the robot that are not ROS: the pylibfranka 1 kHz backend, and franka-sim for tests."""
