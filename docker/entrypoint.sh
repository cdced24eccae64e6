#!/usr/bin/env bash
# Entry point of the spvla image: source ROS 2, the Franka workspace and the spvla workspace, then
#   - with no arguments, or launch arguments (name:=value, --show-args, ...):
#         exec ros2 launch spvla bringup.launch.py <the arguments, unchanged>
#   - with a command as first argument (bash, spvla-bag, ros2, spvla-bench, ...): exec that command.
# Examples (docker compose -f docker/compose.yaml run --rm spvla ...):
#   ... checkpoint:=/checkpoints/cogact device:=cuda dry_run:=true
#   ... spvla-bag play /bags/kitchen_take1
#   ... bash
# The paths can be overridden (the unit test does): ROS_SETUP, FRANKA_WS, SPVLA_WS.
set -eo pipefail  # no -u: the ROS setup scripts read unset variables

ros_setup="${ROS_SETUP:-/opt/ros/${ROS_DISTRO:?ROS_DISTRO is not set (the ros base image sets it)}/setup.bash}"
overlays=("${ros_setup}")
if [[ -n "${FRANKA_WS:-}" ]]; then overlays+=("${FRANKA_WS}/install/setup.bash"); fi
overlays+=("${SPVLA_WS:?SPVLA_WS is not set}/install/setup.bash")

for setup in "${overlays[@]}"; do
    if [[ ! -f "${setup}" ]]; then
        echo "spvla-entrypoint: ${setup} not found: was the image built completely?" >&2
        exit 2
    fi
    # shellcheck disable=SC1090
    source "${setup}"
done

if [[ $# -eq 0 || "$1" == *":="* || "$1" == -* ]]; then
    exec ros2 launch spvla bringup.launch.py "$@"
fi
exec "$@"
