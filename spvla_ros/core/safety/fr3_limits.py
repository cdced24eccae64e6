"""Franka Research 3 Cartesian motion-generator limits (Franka's published robot specification).

These are the thresholds the robot itself enforces on a Cartesian velocity stream; exceeding one aborts
the motion with a reflex. Norms are over the 3-vector (linear or angular part of the twist). Every
configured limit in :class:`~spvla_ros.core.safety.config.SafetyConfig` is validated to stay below them.
"""

FR3_MAX_LIN_VEL_MPS = 3.0
"""Translational velocity, m/s (norm)."""
FR3_MAX_LIN_ACC_MPS2 = 9.0
"""Translational acceleration, m/s^2 (norm)."""
FR3_MAX_LIN_JERK_MPS3 = 4500.0
"""Translational jerk, m/s^3 (norm)."""
FR3_MAX_ANG_VEL_RADPS = 2.5
"""Rotational velocity, rad/s (norm)."""
FR3_MAX_ANG_ACC_RADPS2 = 17.0
"""Rotational acceleration, rad/s^2 (norm)."""
FR3_MAX_ANG_JERK_RADPS3 = 8500.0
"""Rotational jerk, rad/s^3 (norm)."""
FR3_CONTROL_PERIOD_S = 0.001
"""The FCI real-time loop runs at 1 kHz; every limit above is judged on 1 ms differences."""

TWIST_DIM = 6
"""A twist is [vx, vy, vz, wx, wy, wz]: linear m/s then angular rad/s, in the FR3 base frame."""
LINEAR = slice(0, 3)
ANGULAR = slice(3, 6)
