# Entry points: `make test-fig6` (the main job) and `make test` (everything).
# Both set up what is missing first: system packages (as root, via apt),
# a virtualenv with the project, and the guest kernel when this kernel lacks
# the datapath.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
IIPTRAN := $(PY) -m testbed
SYSTEM_PACKAGES := frr iproute2 tcpdump tshark traceroute iputils-ping procps kmod chromium \
                   qemu-system-x86 busybox-static

.PHONY: all deps system-deps test unit test-fig3 test-fig6 matrix profiles selftest bench down clean

all: test

system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to install $$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e .
	$(PY) -m compileall -q testbed conformance tests >/dev/null
	touch $@

deps: system-deps $(VENV)/.installed

unit: deps
	$(PY) -m pytest -q tests/unit

test-fig3: deps
	$(IIPTRAN) test fig3

test-fig6: deps
	$(IIPTRAN) test fig6

# The three datapath modes side by side on both figures; fails unless every
# verdict is what RFC 3884 predicts for its mode (IIPtran: all pass).
matrix: deps
	$(IIPTRAN) matrix fig6
	$(IIPTRAN) matrix fig3

# The suite's own test: each negative profile must fail exactly the
# requirements it breaks and pass the rest.
profiles: deps
	$(IIPTRAN) profiles

# Clean-up after down, failed bring-up and interrupt; report artifacts
# from a real run (tshark decrypts a capture).
selftest: profiles deps
	PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(IIPTRAN) run -- $(PY) -m pytest -q -p no:cacheprovider tests/kernel

test: unit matrix selftest

bench: deps
	$(IIPTRAN) run -- $(PY) -m testbed.bench --inner fig6
	$(PY) -m testbed.bench fig6

down: deps
	$(IIPTRAN) down --all

clean:
	rm -rf $(VENV) .cache .run reports/*/
