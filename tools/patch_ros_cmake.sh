#!/usr/bin/env bash
# Rewrite the /opt/python/cp311-cp311 paths that the ROS kilted wheels bake into their CMake exports,
# so rosidl can build interfaces against this venv (see shared/notes/toolchain.md). Idempotent.
set -euo pipefail
venv="$(cd "${1:?usage: patch_ros_cmake.sh VENV}" && pwd)"
py="$venv/bin/python"
pyinc=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
npinc=$("$py" -c "import numpy; print(numpy.get_include())")
# grep exits 1 when nothing is left to patch (every run after the first): that is success here.
{ grep -rlZ /opt/python/cp311-cp311 "$venv/share" --include='*.cmake' 2>/dev/null || true; } | xargs -0 -r sed -i \
  -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$npinc#g" \
  -e "s#/opt/python/cp311-cp311/include/python3.11#$pyinc#g"
