# Build the spvla interfaces (msg/, srv/) with rosidl into .venv (toolchain notes §2, Option A), so that
# `from spvla.msg import ActionChunk` works in the venv with no environment set-up. The Python package
# itself comes from `pip install -e .`, hence -DSPVLA_INSTALL_PYTHON=OFF. Rebuilt when an interface changes.
MSG_STAMP := $(VENV)/.msgs
MSG_SRCS := CMakeLists.txt package.xml $(wildcard msg/*.msg srv/*.srv)
SETUP_DEPS += $(MSG_STAMP)

$(MSG_STAMP): $(VENV)/.deps $(MSG_SRCS)
	rm -rf build/spvla_msgs && mkdir -p build
	AMENT_PREFIX_PATH=$(abspath $(VENV)) CMAKE_PREFIX_PATH=$(abspath $(VENV)) \
	  cmake -S . -B build/spvla_msgs -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) -DBUILD_TESTING=OFF \
	  -DSPVLA_INSTALL_PYTHON=OFF -DPython3_EXECUTABLE=$(abspath $(BIN)/python) > build/spvla_msgs.log 2>&1 \
	  || (cat build/spvla_msgs.log; exit 1)
	cmake --build build/spvla_msgs -j2 >> build/spvla_msgs.log 2>&1 || (tail -50 build/spvla_msgs.log; exit 1)
	cmake --install build/spvla_msgs >> build/spvla_msgs.log 2>&1 || (tail -50 build/spvla_msgs.log; exit 1)
	$(BIN)/python -c "from spvla.msg import ActionChunk, InferenceRequest, SchedulerStatus"
	touch $@
