"""docs/operator.md and its node-graph picture stay true to the code they describe.

Regressions pinned:
  * a topic renamed in spvla_ros/nodes/topics.py but still shown under its old name in the guide or picture;
  * a parameter in the rqt tuning table or an override example that no node has in config/{spvla,safety}.yaml
    (or, for the policy node's pruning parameters, config/pruning.yaml);
  * the launch-argument table drifting from launch/bringup.launch.py;
  * links to files that moved.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from test_docker import declared_launch_arguments

from spvla_ros.nodes import topics

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "operator.md"
GRAPH_DOT = ROOT / "docs" / "img" / "node_graph.dot"
NODE_OF = {"scheduler": "spvla_scheduler", "policy": "spvla_policy"}


def _known_topics() -> set[str]:
    return {value for name, value in vars(topics).items() if name.isupper() and isinstance(value, str)}


def _topics_in(text: str) -> set[str]:
    pattern = r"(?<![\w.])(/(?:spvla|camera|franka_robot_state_broadcaster)/[A-Za-z0-9_/]*[A-Za-z0-9_])"
    names = set(re.findall(pattern, text.replace("\\n", " ")))  # graphviz labels break lines with backslash-n
    # A topic followed by a message field (/spvla/scheduler_status/keep_ratio in rqt Plot) names the topic.
    return {n for n in names if not any(n.startswith(k + "/") for k in _known_topics())}


def _node_parameters() -> dict[str, set[str]]:
    params: dict[str, set[str]] = {}
    for name in ("spvla.yaml", "safety.yaml"):
        for node, body in yaml.safe_load((ROOT / "config" / name).read_text()).items():
            params.setdefault(node, set()).update(body["ros__parameters"])
    # The policy node declares every key of config/pruning.yaml as a parameter (start value from that file;
    # test/nodes/test_bringup_consistency.py keeps the two equal).
    params["spvla_policy"].update(yaml.safe_load((ROOT / "config" / "pruning.yaml").read_text()))
    return params


def test_topics_in_the_guide_and_picture_exist():
    known = _known_topics()
    for path in (GUIDE, GRAPH_DOT):
        unknown = sorted(_topics_in(path.read_text()) - known)
        assert unknown == [], f"{path.relative_to(ROOT)} names topics that spvla_ros/nodes/topics.py lacks: {unknown}"


def test_picture_shows_every_topic_of_the_data_path():
    shown = _topics_in(GRAPH_DOT.read_text())
    data_path = {topics.IMAGE, topics.INSTRUCTION, topics.INFERENCE_REQUEST, topics.ACTION_CHUNK, topics.CMD_TWIST,
                 topics.SAFE_TWIST, topics.ESTOP, topics.ROBOT_STATE, topics.SCHEDULER_STATUS, topics.SAFETY_STATUS}
    assert data_path <= shown, f"missing from the picture: {sorted(data_path - shown)}"
    assert (GRAPH_DOT.with_suffix(".png")).stat().st_size > 10_000, "render the picture: see the .dot header"


def test_tuning_table_parameters_are_declared_for_their_node():
    params = _node_parameters()
    rows = [line for line in GUIDE.read_text().splitlines() if re.match(r"\| `\w+`.*\((scheduler|policy)\) \|", line)]
    assert len(rows) >= 10, "the tuning table was not found"
    for row in rows:
        first_cell = row.split("|")[1]
        node = NODE_OF[re.search(r"\((scheduler|policy)\)", first_cell).group(1)]
        for name in re.findall(r"`(\w+)`", first_cell):
            assert name in params[node], f"{name} is not a parameter of {node} in config/spvla.yaml"


def test_override_example_uses_real_parameters():
    blocks = re.findall(r"```yaml\n(.*?)```", GUIDE.read_text(), re.S)
    assert blocks, "the extra_params_file example is missing"
    params = _node_parameters()
    for block in blocks:
        for node, body in yaml.safe_load(block).items():
            unknown = set(body["ros__parameters"]) - params[node]
            assert not unknown, f"example sets unknown {node} parameters {sorted(unknown)}"


def test_launch_argument_table_matches_the_launch_file():
    launch = ROOT / "launch" / "bringup.launch.py"
    if not launch.exists():
        pytest.fail("launch/bringup.launch.py is missing")
    section = GUIDE.read_text().split("### The launch arguments", 1)[1].split("\n## ", 1)[0]
    rows = [row for row in section.splitlines() if row.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert documented == declared_launch_arguments(launch.read_text())


def test_relative_links_resolve():
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", GUIDE.read_text()):
        if "://" in target:
            continue
        assert (GUIDE.parent / target).exists(), f"docs/operator.md links to a missing {target}"
