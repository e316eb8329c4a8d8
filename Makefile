# Entry points: `make test-fig6` (the main job) and `make test` (everything).
# Both set up what is missing first: system packages (as root, via apt),
# a virtualenv with the project, and the guest kernel when this kernel lacks
# the datapath.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
IIPTRAN := $(PY) -m testbed
# The system packages come from testbed/packages.py: only what the target
# asked for needs on this machine (no QEMU where the kernel has the datapath,
# no browser for the main job, Docker only where a backend uses it).
PKG_TARGET := $(or $(filter-out system-deps deps,$(firstword $(MAKECMDGOALS))),test)
PKG_FLAGS := $(if $(filter docker,$(BACKEND)),--docker)
# BACKEND=docker runs the test-fig* labs in containers (default: the
# topology's backend field, else network namespaces).
BACKEND ?=
BACKEND_FLAG := $(if $(BACKEND),--backend $(BACKEND))
# Each stage of a long job says when it started and how long it took.
STAGE := sh .ci/stage

.PHONY: all deps system-deps docker-deps images test unit test-fig3 test-fig6 matrix implementations variants backends profiles \
        selftest gate bench down clean

all: test

system-deps:
	@wanted=$$($(PYTHON) -m testbed.packages $(PKG_TARGET) $(PKG_FLAGS)) || exit 1; \
	missing=$$(for p in $$wanted; do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q 'install ok installed' || echo $$p; done | tr '\n' ' '); \
	if [ -n "$$missing" ]; then \
	  echo "installing for '$(PKG_TARGET)': $$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to install $$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The Docker backend's packages (kept as a target of its own for `make images`).
docker-deps:
	@$(MAKE) --no-print-directory system-deps PKG_TARGET=images

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e .
	$(PY) -m compileall -q testbed conformance tests >/dev/null
	touch $@

# libreswan, unpacked into the cache (it conflicts with strongSwan's packages).
LIBRESWAN := .cache/libreswan/usr/libexec/ipsec/pluto
$(LIBRESWAN): | $(VENV)/.installed
	$(PY) -m testbed.keying.libreswan_package

deps: system-deps $(VENV)/.installed $(LIBRESWAN)

unit: deps
	$(STAGE) unit $(PY) -m pytest -q tests/unit

# The node image of the Docker backend (images/node), built once per recipe.
images: deps docker-deps
	$(IIPTRAN) images

BACKEND_DEPS := $(if $(filter docker,$(BACKEND)),images)

test-fig3: deps $(BACKEND_DEPS)
	$(IIPTRAN) test fig3 $(BACKEND_FLAG)

test-fig6: deps $(BACKEND_DEPS)
	$(IIPTRAN) test fig6 $(BACKEND_FLAG)

# The three datapath modes side by side on both figures, in one batch; fails
# unless every verdict is what RFC 3884 predicts for its mode (IIPtran: all
# pass, or a known deviation recorded in conformance/deviations.yaml).
matrix: deps
	$(STAGE) matrix $(IIPTRAN) matrix fig3 fig6

# The implementation matrix on fig6 (conformance/implementations.yaml): the
# reference (manual keys, FRR, Debian 6.1), BIRD, FRR and BIRD mixed (every
# adjacency FRR-BIRD), IKEv2, Debian's 6.12 kernel and every node configured
# by the example hook (topologies/hooks/iiptran-ip.sh), one column each; fails
# on any verdict that differs from the reference's and is not explained.
# One guest per kernel series.
implementations: deps
	$(STAGE) implementations $(IIPTRAN) implementations fig6

# Fig6 keyed by IKEv2 (strongSwan) on Docker and with static routing, fig3
# keyed by IKEv2, and a generated ring of 16 VN nodes (OSPF alone: with BFD,
# a failover whose alternative path is 8 hops long took 1.2 s under
# emulation beside another lab; fig3 checks FAIL-BFD), in one batch; a
# requirement whose verdict differs between the Docker run and the
# namespace run of the implementation matrix is a bug. Longest runs first:
# two run at a time.
GENERATED := topologies/generated/ring16.yaml
variants: deps images implementations
	$(IIPTRAN) generate ring --nodes 16 --no-bfd --out $(GENERATED)
	$(STAGE) variants $(IIPTRAN) batch $(GENERATED) fig6:backend=docker,keying=ikev2 fig3:keying=ikev2 fig6:routing=static
	$(STAGE) backends $(IIPTRAN) compare --strict --html reports/compare-backends.html \
	  reports/fig6-implementations/ikev2/results.json reports/fig6-docker-ikev2/results.json

# Manually keyed fig6 on Docker against the namespace run of `make matrix`.
backends: deps images
	$(STAGE) docker $(IIPTRAN) test fig6 --backend docker
	$(STAGE) backends $(IIPTRAN) compare --strict --html reports/compare-backends.html reports/fig6-matrix/iiptran/results.json reports/fig6-docker/results.json

# The suite's own test: each negative profile must fail exactly the
# requirements it breaks and pass the rest. Three suites at a time: most of
# a run is waiting (pings, captures, convergence); measured in the guest, 25
# profiles took 16 min 17 s three at a time against about 20 min two at a time.
PROFILE_JOBS ?= 3
profiles: deps
	$(STAGE) profiles env IIPTRAN_JOBS=$(PROFILE_JOBS) $(IIPTRAN) profiles

# Clean-up after down, failed bring-up and interrupt; report artifacts
# from a real run (tshark decrypts a capture).
selftest: profiles deps images
	$(STAGE) selftest env PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(IIPTRAN) run -- $(PY) -m pytest -q -p no:cacheprovider \
	  tests/kernel

# Everything, as one plan (conformance/gate.yaml, `iiptran gate`): the mode
# matrix, the implementation matrix, the variants (the Docker run compared
# with the namespace run), the negative profiles, in one pool per kernel
# series (three places at a time, longest first), then the clean-up
# self-test; each stage judged as its own target above judges it.
test: unit images
	$(IIPTRAN) generate ring --nodes 16 --no-bfd --out $(GENERATED)
	$(STAGE) gate $(IIPTRAN) gate

BENCH_SIZES ?= 4 8 16 32 64
BENCH_GUEST_MEMORY ?= 4096
bench: deps
	$(IIPTRAN) run -- $(PY) -m testbed.bench --inner fig6
	$(IIPTRAN) --guest-memory $(BENCH_GUEST_MEMORY) run -- $(PY) -m testbed.bench_scale --inner $(BENCH_SIZES)
	$(IIPTRAN) --guest-memory $(BENCH_GUEST_MEMORY) run -- $(PY) -m testbed.bench_scale --inner --routing bird $(BENCH_SIZES)
	$(IIPTRAN) run -- $(PY) -m testbed.bench_datapath --inner fig6
	$(IIPTRAN) run -- $(PY) -m testbed.bench_plain --inner fig6
	$(PY) -m testbed.bench fig6

down: deps
	$(IIPTRAN) down --all

clean:
	rm -rf $(VENV) .cache .run reports/*/
