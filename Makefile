# One entry point for people and CI. Every target creates .venv and installs on first use,
# so a fresh machine with Python 3.11+, Node 20+ and git needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: help demo serve tamper bench profile test lint typecheck unit tools rehearsal-tools rehearse rehearse-if-possible synth deploy destroy measure clean

help:
	@echo "make demo     - run the whole pipeline locally (emulated AWS, TCP for vsock), 10 cards"
	@echo "make serve    - keep the local stack running and print how to send a card by hand"
	@echo "make tamper   - the local demo with a changed enclave: KMS must refuse every card"
	@echo "make bench    - 1,000 cards through the local pipeline, against the emulator's ceiling"
	@echo "make profile  - the bench with py-spy on the enclave and the relay: flame graphs (SVG) in the run dir"
	@echo "make test     - lint, type-check, every test, and the rehearsal where it can run"
	@echo "make rehearse - the instance's first boot under real systemd (Linux, root; docs/rehearsal.md)"
	@echo "make synth / deploy / destroy - the CDK stack (deploy and destroy need AWS credentials)"
	@echo "make measure  - rebuild the enclave image (Docker, nitro-cli) and compare its PCR0 with the deployed pin"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,infra,dev]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# shellcheck and systemd-analyze check the host's real files; Debian packages, installed on first use.
tools:
	@command -v shellcheck >/dev/null && command -v systemd-analyze >/dev/null || { \
	  echo "installing shellcheck and systemd (Debian packages) for the host-file checks"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck systemd >/dev/null; }

demo: $(STAMP)
	$(BIN)/python -m app.local demo --count 10

serve: $(STAMP)
	$(BIN)/python -m app.local serve

tamper: $(STAMP)  ## passes when KMS refuses every card of a changed enclave
	$(BIN)/python -m app.local demo --count 3 --tamper

bench: $(STAMP)
	$(BIN)/python -m app.local bench --cards 1000

profile: $(STAMP)
	$(BIN)/python -m app.local bench --cards 1000 --profile

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy app infra tests rehearsal

unit: $(STAMP) $(NODE_STAMP) tools
	$(BIN)/pytest -q

test: lint typecheck unit rehearse-if-possible

# debootstrap and systemd-nspawn are Debian packages, installed on first use (as `tools` does).
rehearsal-tools:
	@command -v debootstrap >/dev/null && command -v systemd-nspawn >/dev/null || { \
	  echo "installing debootstrap and systemd-container (Debian packages) for the rehearsal"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap systemd-container >/dev/null; }

rehearse: $(STAMP) $(NODE_STAMP) rehearsal-tools
	$(BIN)/python -m rehearsal

# Runs the rehearsal on Linux as root with apt (as on CI); elsewhere says in one line why it did not run.
rehearse-if-possible: $(STAMP)
	@if [ "$$(uname -s)" != Linux ]; then echo "rehearsal not run: it needs Linux (this is $$(uname -s))"; \
	elif [ "$$(id -u)" != 0 ]; then echo "rehearsal not run: it needs root (network namespaces, systemd-nspawn)"; \
	elif ! command -v apt-get >/dev/null && ! command -v systemd-nspawn >/dev/null; then \
	  echo "rehearsal not run: no systemd-nspawn and no apt-get to install it"; \
	else $(MAKE) --no-print-directory rehearse; fi

synth: $(STAMP) $(NODE_STAMP)
	npx cdk synth --quiet

deploy: $(STAMP) $(NODE_STAMP)
	npx cdk deploy --require-approval never -O cdk-outputs.json

destroy: $(STAMP) $(NODE_STAMP)
	npx cdk destroy --force

# Reads the pin from SSM (/nitro-enclave-demo/<STACK_NAME>/pinned-pcr0) with the AWS CLI, or takes PCR0=<hex>.
measure:
	bash infra/build/measure.sh

clean:
	rm -rf $(VENV) node_modules cdk.out .pytest_cache .mypy_cache .ruff_cache .cache/rehearsal
