"""Safety layer (ROS-free): validity checks, 1 kHz jerk limiter, watchdog, e-stop, robot-fault latch.

Use :class:`SafetyLayer` with a :class:`SafetyConfig` (defaults in ``config/safety.yaml``, loaded with
:func:`load_safety_config`).
"""

from spvla_ros.core.safety.config import SafetyConfig, load_safety_config
from spvla_ros.core.safety.layer import SafetyLayer, SafetySnapshot
from spvla_ros.core.safety.limiter import TwistRateLimiter
from spvla_ros.core.safety.robot_mode import RobotMode
from spvla_ros.core.safety.validity import Intervention

__all__ = [
    "Intervention",
    "RobotMode",
    "SafetyConfig",
    "SafetyLayer",
    "SafetySnapshot",
    "TwistRateLimiter",
    "load_safety_config",
]
