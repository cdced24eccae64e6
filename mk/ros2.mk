# ROS 2 entry points in .venv (issue 17), included by the main Makefile after msgs.mk.
#
#   .venv/.ament_layout  the ament install layout of spvla (tools/ament_layout.py, from setup.py): ament index
#                        marker, share/spvla/{package.xml,launch/*,config/*}, lib/spvla/<node executables>.
#                        launch/ and config/ files are per-file symlinks into the checkout (edits reach the
#                        installed share at once); the directories are prerequisites, so an added or removed
#                        file is synced by the next `make`.
#   .venv/.ros2_tools    `ros2 launch`, `ros2 param`, `ros2 node`, `ros2 topic`, ... : the wheels of ../shared/ros2
#                        (pure Python, not on the registries; --no-deps: their metadata names ROS packages the
#                        venv has under ros-kilted-* names), psutil (requirements/ros2-tools.txt) and
#                        composition_interfaces (imported by launch_ros) built by rosidl into .venv. Only where
#                        ../shared/ros2 exists: for the launch tests. The product never needs it; `spvla-bringup`
#                        starts the same graph with the registry packages only.
#
# Run `ros2 launch` in the venv:  AMENT_PREFIX_PATH=$PWD/.venv .venv/bin/ros2 launch spvla bringup.launch.py

AMENT_STAMP := $(VENV)/.ament_layout
ROS2_TOOLS_SRC := $(SHARED)/ros2
ROS2_TOOLS_STAMP := $(VENV)/.ros2_tools
COMPOSITION_BUILD := build/composition_interfaces

$(AMENT_STAMP): $(VENV)/.deps $(MSG_STAMP) setup.py package.xml tools/ament_layout.py launch config \
                $(wildcard launch/* config/*)
	$(BIN)/python tools/ament_layout.py $(VENV)
	touch $@

SETUP_DEPS += $(AMENT_STAMP)

ifneq ($(wildcard $(ROS2_TOOLS_SRC)/wheels/*.whl),)
$(ROS2_TOOLS_STAMP): $(VENV)/.deps requirements/ros2-tools.txt $(wildcard $(ROS2_TOOLS_SRC)/wheels/*.whl) \
                     $(wildcard $(ROS2_TOOLS_SRC)/composition_interfaces/*/*)
	$(BIN)/python -m pip install -q --no-deps $(wildcard $(ROS2_TOOLS_SRC)/wheels/*.whl)
	$(BIN)/python -m pip install -q -r requirements/ros2-tools.txt
	@mkdir -p build
	AMENT_PREFIX_PATH=$(abspath $(VENV)) CMAKE_PREFIX_PATH=$(abspath $(VENV)) \
	    cmake -S $(ROS2_TOOLS_SRC)/composition_interfaces -B $(COMPOSITION_BUILD) \
	    -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) -DBUILD_TESTING=OFF \
	    -DPython3_EXECUTABLE=$(abspath $(BIN))/python >$(COMPOSITION_BUILD).log 2>&1 \
	    || { tail -20 $(COMPOSITION_BUILD).log; exit 1; }
	cmake --build $(COMPOSITION_BUILD) -j2 >>$(COMPOSITION_BUILD).log 2>&1 \
	    || { tail -20 $(COMPOSITION_BUILD).log; exit 1; }
	cmake --install $(COMPOSITION_BUILD) >>$(COMPOSITION_BUILD).log 2>&1
	AMENT_PREFIX_PATH=$(abspath $(VENV)) $(BIN)/python -c \
	    "import composition_interfaces.srv, launch_ros, ros2cli; print('ros2 launch tools installed')"
	touch $@

SETUP_DEPS += $(ROS2_TOOLS_STAMP)
endif
