"""package.xml and the Docker image keep up with what the code imports (issue 9: the real-install path).

Every import made by the product (``spvla_ros/`` and ``launch/``) is classified below: standard library,
our own packages, a ROS 2 package, a Python package, or a development-only module allowed in named places.
An import nobody classified fails the test with the place to declare it, so a new dependency cannot slip
into the code without reaching ``package.xml`` (``colcon build`` / ``rosdep``) and the image
(``docker/requirements.txt``).

Regressions pinned:
  * a ROS package imported by a node but missing from package.xml (rosdep would not install it);
  * a message package used by ``msg/*.msg`` or ``find_package``-ed by CMake but not a build dependency;
  * a Python package imported by the product but not installed in the image;
  * image pins drifting from ``requirements/main*.txt`` (other than the documented numpy 1.x exception).
"""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_XML = ROOT / "package.xml"
CMAKELISTS = ROOT / "CMakeLists.txt"
DOCKER_REQUIREMENTS = ROOT / "docker" / "requirements.txt"
PRODUCT_DIRS = ("spvla_ros", "launch")

OWN_MODULES = {"spvla_ros", "spvla"}  # the Python package and the rosidl interfaces built from msg/

# Import names of ROS 2 packages (import name == ROS package name). Extend when the code needs a new one.
ROS_PACKAGES = {
    "action_msgs", "ament_index_python", "builtin_interfaces", "control_msgs", "controller_manager_msgs",
    "diagnostic_msgs", "franka_msgs", "geometry_msgs", "launch", "launch_ros", "lifecycle_msgs",
    "message_filters", "nav_msgs", "rcl_interfaces", "rclpy", "rosgraph_msgs", "rosidl_runtime_py",
    "sensor_msgs", "std_msgs", "std_srvs", "tf2_msgs", "tf2_ros", "unique_identifier_msgs",
    "visualization_msgs",
}  # fmt: skip

# Python packages the product may import: import name -> (distribution name in requirements files,
# rosdep key that package.xml must list, or None when only pip provides it).
PYTHON_PACKAGES: dict[str, tuple[str, str | None]] = {
    "numpy": ("numpy", "python3-numpy"),
    "yaml": ("pyyaml", "python3-yaml"),
    "cv2": ("opencv-python-headless", "python3-opencv"),
    "torch": ("torch", None),
    "transformers": ("transformers", None),
    "safetensors": ("safetensors", None),
    "PIL": ("pillow", None),
    "pylibfranka": ("pylibfranka", None),
    "rosbags": ("rosbags", None),
}
# Provided in the image by apt (rosdep key from package.xml) instead of docker/requirements.txt, and why.
APT_IN_IMAGE = {"cv2": "opencv-python-headless 5.x wheels need numpy >= 2; the image keeps numpy 1.x"}

# Modules for development tools only (benchmarks, evaluation, the franka-sim test peer): allowed only under
# these paths, never needed on the robot, so neither package.xml nor the image carries them.
DEV_ONLY: dict[str, tuple[str, ...]] = {
    "matplotlib": ("spvla_ros/bench/", "spvla_ros/eval/"),
    "metaworld": ("spvla_ros/eval/", "spvla_ros/bench/"),
    "mujoco": ("spvla_ros/eval/", "spvla_ros/bench/"),
    "gymnasium": ("spvla_ros/eval/", "spvla_ros/bench/"),
    "scipy": ("spvla_ros/eval/", "spvla_ros/bench/"),
    "tqdm": ("spvla_ros/eval/", "spvla_ros/bench/"),  # progress bars; installed with transformers (pinned)
    "franka_sim": ("spvla_ros/robot/franka_sim.py", "spvla_ros/robot/sim_server_localhost.py", "spvla_ros/bench/"),
}

# Image pins that differ from requirements/main*.txt on purpose (docker/requirements.txt says why).
PIN_EXCEPTIONS = {"numpy"}

RUNTIME_DEP_TAGS = ("depend", "exec_depend")
BUILD_DEP_TAGS = ("depend", "build_depend", "buildtool_depend")


def _package_xml() -> dict[str, set[str]]:
    """Dependency tag -> package names of package.xml (plus 'member_of_group')."""
    root = ET.parse(PACKAGE_XML).getroot()
    deps: dict[str, set[str]] = {}
    for child in root:
        if child.tag.endswith("depend") or child.tag == "member_of_group":
            deps.setdefault(child.tag, set()).add((child.text or "").strip())
    return deps


def _has(deps: dict[str, set[str]], name: str, tags: tuple[str, ...]) -> bool:
    return any(name in deps.get(tag, set()) for tag in tags)


def _module_names_imported(tree: ast.AST) -> set[str]:
    """Top-level module names of absolute imports, including importlib.import_module("x...") with a literal."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
        ):
            arg = node.args[0]
            literal = arg.value if isinstance(arg, ast.Constant) else None
            if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                literal = arg.values[0].value  # f"franka_msgs.{kind}" -> "franka_msgs."
            if isinstance(literal, str) and re.match(r"[A-Za-z_]\w*\.", literal + "."):
                names.add(literal.split(".")[0])
    return names


def product_imports() -> dict[str, set[str]]:
    """Top-level module name -> repo-relative files of the product that import it (third-party only)."""
    found: dict[str, set[str]] = {}
    for top in PRODUCT_DIRS:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for name in _module_names_imported(ast.parse(path.read_text(), filename=rel)):
                if name and name not in sys.stdlib_module_names and name not in OWN_MODULES:
                    found.setdefault(name, set()).add(rel)
    return found


def _requirement_pins(paths: list[Path]) -> dict[str, str]:
    """Distribution name (lower case, '-' form, extras dropped) -> pinned version, from requirement files."""
    pins: dict[str, str] = {}
    for path in paths:
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
            assert match, f"{path.relative_to(ROOT)}: '{raw}' is not pinned with =="
            pins[match.group(1).lower().replace("_", "-")] = match.group(3)
    return pins


def _is_dev_only(name: str, files: set[str]) -> bool:
    allowed = DEV_ONLY.get(name)
    return allowed is not None and all(any(f.startswith(prefix) for prefix in allowed) for f in files)


# --------------------------------------------------------------------------------------------------------


def test_import_scanner_sees_plain_from_and_importlib_imports():
    tree = ast.parse(
        "import numpy as np\nfrom sensor_msgs.msg import Image\nfrom . import x\n"
        "def f(kind):\n    import torch\n    return importlib.import_module(f'franka_msgs.{kind}')\n"
    )
    assert _module_names_imported(tree) == {"numpy", "sensor_msgs", "torch", "franka_msgs"}


def test_every_product_import_is_classified():
    unknown = {
        name: sorted(files)
        for name, files in product_imports().items()
        if name not in ROS_PACKAGES and name not in PYTHON_PACKAGES and not _is_dev_only(name, files)
    }
    assert unknown == {}, (
        "imports nobody classified (a ROS package -> ROS_PACKAGES and package.xml; a Python package -> "
        "PYTHON_PACKAGES and docker/requirements.txt; a dev tool -> DEV_ONLY with its allowed paths): "
        f"{unknown}"
    )


def test_package_xml_lists_every_ros_package_the_code_imports():
    deps = _package_xml()
    missing = {
        name: sorted(files)
        for name, files in product_imports().items()
        if name in ROS_PACKAGES and not _has(deps, name, RUNTIME_DEP_TAGS)
    }
    assert missing == {}, (
        "package.xml lacks a run-time dependency (<exec_depend> or <depend>) on these imported ROS packages; "
        f"add e.g. <exec_depend>NAME</exec_depend>: {missing}"
    )


def test_package_xml_lists_rosdep_keys_of_python_imports():
    deps = _package_xml()
    missing = {
        key: sorted(files)
        for name, files in product_imports().items()
        if name in PYTHON_PACKAGES and not _is_dev_only(name, files)
        for key in [PYTHON_PACKAGES[name][1]]
        if key is not None and not _has(deps, key, RUNTIME_DEP_TAGS)
    }
    assert missing == {}, f"package.xml lacks <exec_depend> on these rosdep keys: {missing}"


def test_interface_dependencies_are_build_and_run_dependencies():
    """Types used in msg/ and srv/ need their package at build time (rosidl) and at run time."""
    deps = _package_xml()
    used = set()
    for path in sorted(ROOT.glob("msg/*.msg")) + sorted(ROOT.glob("srv/*.srv")):
        for line in path.read_text().splitlines():
            field = line.split("#", 1)[0].split()
            if field and "/" in field[0]:
                used.add(field[0].split("/")[0])
    if not used:
        pytest.skip("msg/ and srv/ use no types of other packages")
    not_both = sorted(
        pkg for pkg in used if not (_has(deps, pkg, BUILD_DEP_TAGS) and _has(deps, pkg, RUNTIME_DEP_TAGS))
    )
    assert not_both == [], f"use <depend> (build + exec) in package.xml for: {not_both}"
    cmake = CMAKELISTS.read_text()
    rosidl_call = re.search(r"rosidl_generate_interfaces\((.*?)\)", cmake, re.S)
    assert rosidl_call, "CMakeLists.txt has no rosidl_generate_interfaces()"
    declared = set(rosidl_call.group(1).split("DEPENDENCIES", 1)[-1].split())
    assert used <= declared, f"rosidl_generate_interfaces DEPENDENCIES lacks {sorted(used - declared)}"


def test_rosidl_package_conventions():
    deps = _package_xml()
    if not list(ROOT.glob("msg/*.msg")) + list(ROOT.glob("srv/*.srv")):
        pytest.skip("no interfaces")
    assert "rosidl_default_generators" in deps.get("buildtool_depend", set())
    assert _has(deps, "rosidl_default_runtime", RUNTIME_DEP_TAGS)
    assert "rosidl_interface_packages" in deps.get("member_of_group", set())


def test_every_cmake_find_package_is_a_build_dependency():
    deps = _package_xml()
    found = set(re.findall(r"find_package\(\s*(\w+)", CMAKELISTS.read_text()))
    missing = sorted(name for name in found if not _has(deps, name, BUILD_DEP_TAGS))
    assert missing == [], f"package.xml lacks a build dependency on find_package()-ed: {missing}"


def test_build_type_matches_cmakelists():
    root = ET.parse(PACKAGE_XML).getroot()
    build_type = root.findtext("export/build_type")
    assert build_type == "ament_cmake" and "ament_package()" in CMAKELISTS.read_text()
    assert "ament_cmake" in _package_xml().get("buildtool_depend", set())


def test_image_installs_every_python_package_the_product_imports():
    image_pins = _requirement_pins([DOCKER_REQUIREMENTS])
    missing = {}
    for name, files in product_imports().items():
        if name not in PYTHON_PACKAGES or _is_dev_only(name, files):
            continue
        dist = PYTHON_PACKAGES[name][0]
        if name in APT_IN_IMAGE:
            assert dist not in image_pins, f"{dist} must come from apt in the image: {APT_IN_IMAGE[name]}"
            continue
        if dist not in image_pins:
            missing[dist] = sorted(files)
    assert missing == {}, f"docker/requirements.txt does not install (pin with ==): {missing}"


def test_image_pins_match_the_main_venv():
    main_pins = _requirement_pins(sorted((ROOT / "requirements").glob("main*.txt")))
    image_pins = _requirement_pins([DOCKER_REQUIREMENTS])
    differ = {
        dist: (version, main_pins[dist])
        for dist, version in image_pins.items()
        if dist in main_pins and main_pins[dist] != version and dist not in PIN_EXCEPTIONS
    }
    assert differ == {}, f"docker/requirements.txt vs requirements/main*.txt (image, venv): {differ}"
    # The documented exception: Jazzy's apt-built message modules are compiled against numpy 1.x.
    assert image_pins["numpy"].split(".")[0] == "1"


def test_setup_py_install_requires_are_in_the_image():
    tree = ast.parse((ROOT / "setup.py").read_text())
    requires: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            requires = [ast.literal_eval(elt) for elt in node.value.elts]
    image_pins = _requirement_pins([DOCKER_REQUIREMENTS])
    missing = [r for r in requires if re.split(r"[<>=\[ ]", r)[0].lower() not in image_pins]
    assert missing == []
