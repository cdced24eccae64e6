"""Thin rclpy wrappers over spvla_ros.core: parameters, QoS and topics live here, logic does not."""
