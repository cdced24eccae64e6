"""One ``main()`` body for every node: init, spin until Ctrl-C or shutdown, tear down in order."""

from __future__ import annotations

from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def spin_node(make_node: Callable[[], Node], args: list[str] | None = None,
              before_destroy: Callable[[Node], None] | None = None) -> int:
    """Create the node with ``make_node`` and spin it; returns the process exit code (0).

    Args:
        make_node: builds the node (after ``rclpy.init``).
        args: ROS command-line arguments (``--ros-args ...``); None for ``sys.argv``.
        before_destroy: called with the node before it is destroyed (e.g. the safety node's last command).
    """
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if before_destroy is not None:
                before_destroy(node)
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
