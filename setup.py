"""pip/colcon install of the spvla Python package (``spvla_ros``) and its console entries.

Versions are pinned in ``requirements/`` (the one place); here only the names are listed.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "spvla"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["spvla_ros", "spvla_ros.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("config/*")),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
    ],
    package_data={"spvla_ros": ["defaults/*.yaml"]},
    include_package_data=True,
    install_requires=["numpy", "pyyaml"],
    python_requires=">=3.10",
    zip_safe=False,
    maintainer="spvla developers",
    maintainer_email="spvla-dev@example.com",
    description="SP-VLA (model scheduling + token pruning) for CogACT on a Franka Research 3, as ROS 2 nodes.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "spvla-bench = spvla_ros.bench.cli:main",
            "spvla-bringup = spvla_ros.nodes.bringup:main",
            "spvla-bag = spvla_ros.bag.cli:main",
            "policy_node = spvla_ros.nodes.policy_node:main",
            "scheduler_node = spvla_ros.nodes.scheduler_node:main",
            "safety_node = spvla_ros.nodes.safety_node:main",
            "gripper_node = spvla_ros.nodes.gripper_node:main",
        ],
    },
)
