# The two commands of the README:
#   make train   set up, then train on real MNIST -> convert with LCE -> verify -> report
#   make test    set up (with the Debian packages the tests use), then run the test suite
# Optional: make arm-setup  aarch64 emulation for benchmarks/arm_emulated.py (root, ~270 MB)
VENV ?= .venv
TRAIN_ARGS ?=
PYTEST_ARGS ?=
# Test processes (pytest-xdist), one test file each: TensorFlow's tracing and LCE's
# converter are single-threaded, so two processes use both cores of a 2-core machine.
TEST_WORKERS ?= 2

.PHONY: setup setup-test data train test arm-setup

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --system

data:
	scripts/setup.sh --data-only

train: setup
	$(VENV)/bin/horq-keras train $(TRAIN_ARGS)

test: setup-test
	TF_CPP_MIN_LOG_LEVEL=2 $(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

arm-setup:
	scripts/setup_arm_emulation.sh
