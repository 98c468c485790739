# The two commands of the README:
#   make train   set up, then train on real MNIST -> convert with LCE -> verify -> report
#   make test    set up (with the Debian packages the tests use), then run the test suite
# Also: make wheel-check  build the sdist and wheel, install the wheel (not editable) into a
#                         fresh virtualenv and run a tiny train -> convert -> verify there
# Optional: make arm-setup  aarch64 emulation for benchmarks/arm_emulated.py (root, ~270 MB)
VENV ?= .venv
TRAIN_ARGS ?=
PYTEST_ARGS ?=
# Test processes (pytest-xdist), one test file each: TensorFlow's tracing and LCE's
# converter are single-threaded, so two processes use both cores of a 2-core machine.
TEST_WORKERS ?= 2

.PHONY: setup setup-test data train test wheel-check arm-setup

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --system

data:
	scripts/setup.sh --data-only

train: setup
	$(VENV)/bin/horq-keras train $(TRAIN_ARGS)

# TF_CPP_MIN_LOG_LEVEL=3 hides TensorFlow's C++ log lines (the CUDA-factory errors of a
# machine without CUDA among them); TensorFlow's real failures still raise exceptions.
test: setup-test
	TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

wheel-check: setup
	scripts/check_wheel.sh

arm-setup:
	scripts/setup_arm_emulation.sh
