# The two commands in the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# `make run` installs the runtime only; `make test` adds the test extras.
RUNTIME := $(VENV)/.runtime
STAMP   := $(VENV)/.installed
ARGS    ?=

# Debian packages the tests and the benchmark drive as real peers.
DEB_TEST  := prometheus prometheus-node-exporter bpftool
DEB_BENCH := prometheus-node-exporter wrk linux-perf
# Building and running the container image with no registry (docker/build-image.sh, docker/image-test.sh).
DEB_IMAGE := podman runc mmdebstrap
# The real QEMU guest of `make test-vm` (tests/vm/): QEMU, the root's builder, mke2fs for its image.
DEB_VM := qemu-system-x86 mmdebstrap e2fsprogs
# tests/vm/build.sh caches the guest here (the Debian base once, the package layer per change).
VM_CACHE ?= .cache/vm

.PHONY: run test test-vm fuzz bench lint deps-test deps-bench deps-image deps-vm image image-test dashboards golden proto dist clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(RUNTIME) $@

run: $(RUNTIME)
	$(BIN)/sysmon-exporter $(ARGS)

# An sdist and a wheel in dist/, checked by twine (nothing is published).
dist: $(RUNTIME)
	$(BIN)/pip install --quiet build twine
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

# Installs what is missing, and only that (apt-get needs root; CI is root).
deps-test:
	@./tests/install-debs.sh $(DEB_TEST)

deps-bench:
	@./tests/install-debs.sh $(DEB_BENCH)

deps-image:
	@./tests/install-debs.sh $(DEB_IMAGE)

deps-vm:
	@./tests/install-debs.sh $(DEB_VM)

test: $(STAMP) deps-test
	$(BIN)/ruff check exporter tests dashboards
	$(BIN)/mypy
	$(BIN)/pytest -q

# A Debian guest under QEMU running the agent and the exporter from this tree (tests/vm/; slow,
# not in `make test`). The image is built first, then one guest is booted for all of its tests.
test-vm: $(STAMP) deps-vm
	VM_IMAGE=$$(./tests/vm/build.sh $(BIN)/python $(VM_CACHE)) && export VM_IMAGE && $(BIN)/pytest -q tests/vm

# Every parser under hypothesis with 1,000,000 examples each (make test runs 10,000); about an hour.
fuzz: $(STAMP)
	SYSMON_FUZZ_EXAMPLES=1000000 $(BIN)/pytest -q -p no:cacheprovider tests/sources/test_fuzz.py

golden: $(STAMP) deps-test
	$(BIN)/pytest -q tests/test_golden.py tests/grpc_compat/test_payload.py::test_golden_payload \
		tests/sources/test_bpf_programs.py --update-golden

# The AgentService and AgentGatewayService stubs; tests/grpc_compat/test_generated.py runs the same command
# and compares.
PROTO_CMD := $(BIN)/python -m grpc_tools.protoc -Iexporter/grpc_compat/_generated=exporter/grpc_compat \
	--python_out=. --pyi_out=. --grpc_python_out=. exporter/grpc_compat/monitoring.proto exporter/grpc_compat/gateway.proto

proto: $(STAMP)
	$(PROTO_CMD)

# Rewrites dashboards/*.json and the chart's copies from dashboards/generate.py.
dashboards: $(STAMP)
	$(BIN)/python dashboards/generate.py

# Builds the image offline into podman's image store as $(IMAGE), without the checks.
IMAGE ?= localhost/sysmon-exporter:$(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' exporter/__init__.py)
image: $(RUNTIME) deps-image
	PYTHON=$(BIN)/python ./docker/build-image.sh $(IMAGE)

# Builds the image offline and runs it against this host's /proc and /sys (slow; not in `make test`).
image-test: $(STAMP) deps-image
	PYTHON=$(BIN)/python ./docker/image-test.sh

bench: $(STAMP) deps-bench
	$(BIN)/python tests/bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
