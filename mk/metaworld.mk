# Meta-World closed-loop evaluation. The packages come from requirements/main-metaworld.txt (installed with
# the main venv); this stamp checks once that the simulator and the scripted experts load (no rendering).
$(VENV)/.metaworld: $(VENV)/.deps requirements/main-metaworld.txt
	$(BIN)/python -c "import metaworld.env_dict, metaworld.policies, mujoco; print('metaworld', metaworld.__name__, 'mujoco', mujoco.__version__)"
	touch $@

SETUP_DEPS += $(VENV)/.metaworld

.PHONY: bench-closed-loop
bench-closed-loop: setup
	$(BIN)/spvla-bench closed-loop --quick --json bench-closed-loop.json --plot bench-closed-loop.png
