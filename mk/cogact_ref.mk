# Official CogACT reference venv (issue 16), included by the main Makefile.
#
#   .venv-cogact/.deps   the official CogACT + prismatic code's own pins (requirements/cogact-ref.txt) in their
#                        own venv: they conflict with the product's (transformers 4.40 vs 5, numpy 1 vs 2).
#                        The official code itself is never installed: tools/cogact_reference.py puts
#                        ../shared/third_party on sys.path at run time.
#
# Only built when ../shared/third_party is there (the product never needs it). A failed install does not fail
# `make setup`: the parity tests then skip and name the log.

COGACT_VENV := .venv-cogact
COGACT_LOG := build/cogact-ref-setup.log

ifneq ($(wildcard $(SHARED)/third_party/cogact/vla/cogactvla.py),)
$(COGACT_VENV)/.deps: requirements/cogact-ref.txt
	@mkdir -p build
	@rm -f $(COGACT_LOG) $@
	@if { $(PYTHON) -m venv $(COGACT_VENV) && \
	      $(COGACT_VENV)/bin/python -m pip install -q -r requirements/cogact-ref.txt && \
	      : > "$$($(COGACT_VENV)/bin/python -c 'import importlib.util as u; \
	             print(u.find_spec("torchvision").submodule_search_locations[0])')/_meta_registrations.py" && \
	      $(COGACT_VENV)/bin/python -c "import torchvision.transforms, timm, transformers"; } \
	      >$(COGACT_LOG) 2>&1; then \
	    touch $@; \
	else \
	    echo "WARNING: the CogACT reference venv could not be built (see $(COGACT_LOG)); parity tests will skip"; \
	fi

SETUP_DEPS += $(COGACT_VENV)/.deps
endif
