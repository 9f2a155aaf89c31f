# `make test` and `make demo` each create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# The CPU build of torch 2.13.0 is on this machine's disk; install it first so that
	# the project's `torch` requirement is already met and nothing larger is downloaded.
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[test]'
	# Triton (Linux only), for the tests of the GPU attention kernel under Triton's interpreter: beside the venv's
	# packages, not among them, since torch imports an installed Triton when Dynamo loads, which aborts a process
	# that has imported TensorFlow first (both bundle LLVM). 3.9: older interpreters fail with numpy 2.4.
	if [ "$$(uname)" = Linux ]; then $(PY) -m pip install --target $(VENV)/triton 'triton>=3.9'; fi
	touch $(STAMP)

# A worker per core (at most 4): much of the suite waits on one thread (Inductor's C++ compiles, tracing, the
# single-threaded example scripts). The slow tests run first (tests/conftest.py). On a 2-core VM, two workers
# ran it in 13 to 14 minutes (2026-11-29; 15.5 to 16.5 with the install). The 15 slowest tests are listed at the
# end of each run.
test: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q -n auto --maxprocesses 4 --dist worksteal --durations=15

demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m deberta_common.demo

clean:
	rm -rf $(VENV) build *.egg-info
