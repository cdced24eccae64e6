# spvla — two commands on a fresh machine:
#   make demo   set up .venv and run the main job on an embedded default (no robot, no GPU, no downloads)
#   make test   set up .venv and run every test
# Both are idempotent; the second run only re-installs when requirements/ or setup.py changed.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
SHARED ?= ../shared
REQ_MAIN := $(sort $(wildcard requirements/main*.txt))
BRIDGE := $(SHARED)/data/bridge_debug_25ep.npz
DEMO_DATA := $(if $(wildcard $(BRIDGE)),$(BRIDGE),synthetic)
# Isolate DDS traffic of tests and demos to this host.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test bench lint clean

# Extra set-up steps (msg builds, simulator venvs) live in mk/*.mk and append their stamp files here.
SETUP_DEPS := $(VENV)/.deps
-include $(sort $(wildcard mk/*.mk))

setup: $(SETUP_DEPS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip setuptools wheel

$(VENV)/.deps: $(BIN)/python $(REQ_MAIN) requirements/test.txt setup.py
	$(BIN)/python -m pip install -q $(addprefix -r ,$(REQ_MAIN)) -r requirements/test.txt
	bash tools/patch_ros_cmake.sh $(VENV)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# The whole graph on an embedded default: camera frames replayed from a rosbag made from shared/ images
# (generated frames without shared/), tiny CogACT on CPU, scheduler, dry-run safety; a live status line;
# stops by itself when the replay ends (about 15 s plus start-up).
demo: setup
	rm -rf build/demo_frames
	$(BIN)/spvla-bag make-bag --rate-hz 5 --repeat 4 --out build/demo_frames \
	  $(if $(wildcard $(SHARED)/data/real_images/*.png),--images $(SHARED)/data/real_images --size 320x240,--generated 16)
	$(BIN)/spvla-bringup --replay-bag build/demo_frames --exit-after-replay --status --extra-params-file config/demo.yaml

test: setup
	$(BIN)/python -m pytest -q -ra test

bench: setup
	$(BIN)/spvla-bench scheduler --data $(DEMO_DATA) --json bench-scheduler.json

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
