"""Bring up the spvla graph: policy (CogACT + SP-VLA pruning) -> scheduler -> safety, plus an optional
camera replay from a rosbag2.

    ros2 launch spvla bringup.launch.py checkpoint:=/data/CogACT-Base preset:=cogact-base device:=cuda
    ros2 launch spvla bringup.launch.py replay_bag:=/data/frames.bag dry_run:=true

The same graph as ``spvla-bringup`` (spvla_ros/nodes/bringup.py); test/nodes/test_bringup_consistency.py
keeps the executables, parameter files and arguments of the two equal. Values live in config/*.yaml;
the arguments below are deployment choices only. As with ``spvla-bringup``, a node of the graph that exits
(or dies) shuts everything down: the others get SIGINT, and the safety node ramps its output to an exact
zero before it exits. The camera replay ending does not stop the graph.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable, Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "spvla"

ARGUMENTS = {
    "params_file": ("config/spvla.yaml", "ROS params file of the policy, scheduler and gripper nodes"),
    "safety_params_file": ("config/safety.yaml", "ROS params file of the safety node"),
    "extra_params_file": ("", "params file applied after the others (overrides); '' = none"),
    "checkpoint": ("", "CogACT checkpoint directory (official release layout); '' = random init"),
    "preset": ("tiny", "CogACT preset: tiny | cogact-base"),
    "device": ("cpu", "torch device of the policy: cpu | cuda"),
    "dry_run": ("true", "safety node in dry run: checks everything, commands nothing"),
    "use_sim_time": ("false", "all nodes follow /clock (deterministic bag replay)"),
    "replay_bag": ("", "rosbag2 to replay as the camera; '' = a real camera publishes"),
}


def _default(name: str):
    value = ARGUMENTS[name][0]
    if value.startswith("config/"):
        return PathJoinSubstitution([FindPackageShare(PACKAGE), value])
    return value


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    extra = [arg["extra_params_file"]] if arg["extra_params_file"] else []
    sim = arg["use_sim_time"].lower() == "true"
    actions = [
        Node(
            package=PACKAGE, executable="policy_node", output="screen", on_exit=Shutdown(reason="policy exited"),
            parameters=[arg["params_file"], *extra, {
                "checkpoint": arg["checkpoint"], "preset": arg["preset"], "device": arg["device"],
                "use_sim_time": sim,
            }],
        ),
        Node(
            package=PACKAGE, executable="scheduler_node", output="screen", on_exit=Shutdown(reason="scheduler exited"),
            parameters=[arg["params_file"], *extra, {"use_sim_time": sim}],
        ),
        Node(
            package=PACKAGE, executable="safety_node", output="screen", on_exit=Shutdown(reason="safety exited"),
            parameters=[arg["safety_params_file"], *extra, {
                "dry_run": arg["dry_run"].lower() == "true", "use_sim_time": sim,
            }],
        ),
        Node(  # Franka Hand; backend (none | franka_ros2 | libfranka) from the params files
            package=PACKAGE, executable="gripper_node", output="screen", on_exit=Shutdown(reason="gripper exited"),
            parameters=[arg["params_file"], *extra, {"use_sim_time": sim}],
        ),
    ]
    if arg["replay_bag"]:
        actions.append(Node(package=PACKAGE, executable="spvla-bag", output="screen",
                            arguments=["play", arg["replay_bag"]]))
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=_default(name), description=desc)
          for name, (_, desc) in ARGUMENTS.items()),
        # Camera frames cross processes through a 16 MB shared-memory segment (config/fastdds_shm.xml).
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                               PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "fastdds_shm.xml"])),
        OpaqueFunction(function=_nodes),
    ])
