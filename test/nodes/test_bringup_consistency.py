"""The launch file, ``spvla-bringup``, setup.py, CMakeLists.txt and config/spvla.yaml describe one graph.

Regressions pinned: a node, argument or params file added to one bring-up but not the other; a console
entry missing from the ament install (``ros2 run spvla ...``); YAML defaults drifting from the dataclass
defaults; a YAML key that no node declares (rclpy would silently ignore it).
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import yaml

from spvla_ros.core.pruning.config import PruningConfig
from spvla_ros.core.scheduler_config import SchedulerConfig
from spvla_ros.core.scheduler_modes import load_scheduler_modes
from spvla_ros.nodes import bringup, policy_node, scheduler_node

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "bringup.launch.py"


def _launch_tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text())


def _launch_arguments() -> dict[str, tuple[str, str]]:
    for node in ast.walk(_launch_tree()):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ARGUMENTS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("ARGUMENTS not found in the launch file")


def _launch_nodes() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """executable -> (params-file arguments in order, parameter names) of every launch_ros Node(...)."""
    found = {}
    for node in ast.walk(_launch_tree()):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Node"):
            continue
        kw = {k.arg: k.value for k in node.keywords}
        exe = kw["executable"].value
        files, params = [], []
        if "parameters" in kw:
            for el in kw["parameters"].elts:
                if isinstance(el, ast.Subscript):
                    files.append(el.slice.value)
                elif isinstance(el, ast.Starred):
                    files.append("extra_params_file")
                elif isinstance(el, ast.Dict):
                    params += [k.value for k in el.keys]
        found[exe] = (tuple(files), tuple(params))
    return found


def test_launch_arguments_equal_bringup_arguments():
    launch_args = _launch_arguments()
    assert {a.name: (a.default, a.description) for a in bringup.LAUNCH_ARGUMENTS} == launch_args


def test_launch_nodes_equal_bringup_nodes():
    nodes = _launch_nodes()
    expected = {s.executable: (s.params_files, s.parameters) for s in bringup.NODES}
    expected[bringup.REPLAY.executable] = ((), ())
    assert nodes == expected


def test_node_names_are_the_nodes_own():
    from spvla_ros.core.safety.config import SAFETY_NODE_NAME
    from spvla_ros.nodes import gripper_node
    from spvla_ros.nodes.bringup import NODES

    names = {s.executable: s.node_name for s in NODES}
    assert names == {"policy_node": policy_node.NODE_NAME, "scheduler_node": scheduler_node.NODE_NAME,
                     "safety_node": SAFETY_NODE_NAME, "gripper_node": gripper_node.NODE_NAME}


def test_bringup_cli_has_every_launch_argument():
    parser = bringup.build_parser()
    options = {a.dest for a in parser._actions}
    assert {a.name for a in bringup.LAUNCH_ARGUMENTS} <= options


def _setup_entries() -> dict[str, str]:
    text = (ROOT / "setup.py").read_text()
    return dict(re.findall(r'"([\w-]+) = ([\w.]+:\w+)"', text))


def test_every_node_executable_is_a_console_entry_and_an_ament_executable():
    entries = _setup_entries()
    cmake = dict(re.findall(r'"([\w-]+)=([\w.]+:\w+)"', (ROOT / "CMakeLists.txt").read_text()))
    for spec in [*bringup.NODES, bringup.REPLAY]:
        assert entries[spec.executable] == f"{spec.module}:main"
        assert cmake[spec.executable] == f"{spec.module}:main"
    assert cmake == entries


def _yaml_params(node_name: str) -> dict:
    data = yaml.safe_load((ROOT / "config" / "spvla.yaml").read_text())
    return data[node_name]["ros__parameters"]


def test_scheduler_yaml_keys_and_defaults_match_the_declared_parameters():
    specs = [*scheduler_node.stream_specs(), *scheduler_node.mapping_specs(), *scheduler_node.gripper_specs()]
    yaml_params = _yaml_params(scheduler_node.NODE_NAME)
    sched_specs = scheduler_node.scheduler_specs()
    assert set(yaml_params) == {s.name for s in [*specs, *sched_specs]} | {"frame_id", scheduler_node.MODE_PARAM}
    for spec in specs:
        assert yaml_params[spec.name] == spec.default, spec.name
    for spec in [*specs, *sched_specs]:
        assert type(yaml_params[spec.name]) is type(spec.default), f"{spec.name}: typed YAML value"


def test_scheduler_yaml_holds_the_default_mode_and_exactly_its_values():
    modes = load_scheduler_modes()
    yaml_params = _yaml_params(scheduler_node.NODE_NAME)
    assert yaml_params[scheduler_node.MODE_PARAM] == modes.default
    expected = scheduler_node.mode_values(modes, modes.default, yaml_params["speed_range"])
    assert {n: yaml_params[n] for n in expected} == expected
    group = scheduler_node.ParamGroup(SchedulerConfig, scheduler_node.scheduler_specs())
    built = group.build({n: yaml_params[n] for n in group.specs}, {"action_rate_hz": None})
    assert built == modes.config(modes.default, speed_range=yaml_params["speed_range"]).with_changes(
        v_min=built.v_min, v_max=built.v_max, clip_bound=built.clip_bound, v_min_fraction=built.v_min_fraction,
        v_max_fraction=built.v_max_fraction,
    )
    mode = modes.config(modes.default, speed_range=yaml_params["speed_range"])
    assert (built.v_min_resolved, built.v_max_resolved, built.clip_bound_resolved) == (
        mode.v_min_resolved, mode.v_max_resolved, mode.clip_bound_resolved)


def test_pruning_and_policy_settings_live_in_their_own_files():
    """config/pruning.yaml and config/policy.yaml are the one place for those settings: spvla.yaml sets none of
    them (it would silently override the file), and every PruningConfig field is a node parameter whose start
    value is the file's (issue 19: the node used to take the dataclass defaults, not the file)."""
    yaml_params = _yaml_params(policy_node.NODE_NAME)
    assert not set(yaml_params) & {*policy_node.PRUNING_FIELDS, policy_node.RESIZE_PARAM}
    assert yaml_params["pruning_config"] == "" and yaml_params["policy_config"] == ""
    specs = policy_node.pruning_specs(ROOT / "config" / "pruning.yaml")
    assert [s.field for s in specs] == [f.name for f in dataclasses.fields(PruningConfig)]
    from_file = yaml.safe_load((ROOT / "config" / "pruning.yaml").read_text())
    assert {s.name: s.default for s in specs} == from_file
    assert all(len(s.description) > 10 for s in specs)


def test_every_parameter_has_a_description():
    for spec in [*scheduler_node.scheduler_specs(), *scheduler_node.stream_specs(), *scheduler_node.mapping_specs()]:
        assert len(spec.description) > 10, spec.name


def test_gripper_yaml_keys_and_defaults_match_the_declared_parameters():
    from spvla_ros.nodes import gripper_node

    yaml_params = _yaml_params(gripper_node.NODE_NAME)
    specs = gripper_node.hand_specs()
    node_only = {"backend", "robot_ip", "move_action", "grasp_action", "homing_action", "home_on_start",
                 "status_rate_hz"}
    assert set(yaml_params) == {s.name for s in specs} | node_only
    for spec in specs:
        assert yaml_params[spec.name] == spec.default, spec.name
