# The two commands: `make dev` (run the whole API locally) and `make test` (everything CI runs).
# Both install what they need on a fresh machine: a Python virtualenv in .venv with the pinned
# emulator (moto) and cfn-lint; Rust crates come through cargo.

SHELL := /bin/bash
VENV := .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-$(shell cksum < tests/emulator/requirements.txt | cut -d' ' -f1)
PORT ?= 3000
EMULATOR_PORT ?= 5005

.PHONY: dev demo test portal-deps portal-test screenshots venv sam-venv bench-venv lint nextest package sam-build bench clean

venv: $(STAMP)

$(STAMP): tests/emulator/requirements.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/emulator/requirements.txt
	touch $@

# aws-sam-cli pins an older boto3 than moto wants: it gets a virtualenv of its own.
SAM_VENV := .venv-sam
SAM_CLI := aws-sam-cli==1.170.0
SAM_STAMP := $(SAM_VENV)/.installed-$(subst =,-,$(SAM_CLI))

sam-venv: $(SAM_STAMP)

$(SAM_STAMP):
	rm -rf $(SAM_VENV)
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check $(SAM_CLI)
	touch $@

## make dev: the emulator on 127.0.0.1:$(EMULATOR_PORT) and every route on 127.0.0.1:$(PORT).
dev: venv
	cargo build -p local-stack --bin local-server
	PORT=$(PORT) DEMO=$(DEMO) tests/emulator/with-emulator.sh $(EMULATOR_PORT) target/debug/local-server

## make demo: make dev, with user-1 given a month of activity first (clicks, sign-ups, invoices, a
## refund, a payout: through the routes, the clock moved back day by day); open the printed
## portal URL.
demo:
	$(MAKE) dev DEMO=1

## make test: format and lints, template checks (cfn-lint, sam validate), the README's walkthrough
## run verbatim against the local server (its calls timed), contract fuzzing of the local server
## against openapi.yaml, then every unit and integration test (cargo nextest; the soak test among
## them, on an emulator of its own injecting faults), each run against an emulator of its own.
test: venv sam-venv portal-deps lint nextest
	$(VENV)/bin/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 AWS_REGION=us-east-1 $(SAM_VENV)/bin/sam validate --lint --template template.yaml
	cargo build -p local-stack --bin local-server
	tests/emulator/with-emulator.sh 0 tests/emulator/walkthrough.sh
	tests/emulator/with-emulator.sh 0 tests/portal/run.sh
	tests/emulator/with-emulator.sh 0 tests/emulator/contract.sh
	tests/emulator/with-emulator.sh 0 cargo nextest run --config-file tests/nextest.toml --workspace --all-targets --no-fail-fast -j 6

## The portal's browser test (part of make test): Debian's Chromium (apt, when missing; Playwright
## never downloads a browser here) and the test's two pinned npm packages, playwright-core and
## axe-core, into tests/portal/node_modules.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PORTAL_STAMP := tests/portal/node_modules/.installed-$(shell cksum < tests/portal/package-lock.json | cut -d' ' -f1)

portal-deps: $(PORTAL_STAMP)
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; }

$(PORTAL_STAMP): tests/portal/package-lock.json
	cd tests/portal && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

## make portal-test: only the browser test (screenshots under target/portal/).
portal-test: venv portal-deps
	cargo build -p local-stack --bin local-server
	tests/emulator/with-emulator.sh 0 tests/portal/run.sh

## make screenshots: the browser test, then its screenshots copied to where the README shows them.
screenshots: portal-test
	cp target/portal/desktop.png target/portal/phone.png functions/portal/screenshots/

# The test runner; machines of this project's kind ship it, others get it from crates.io.
nextest:
	cargo nextest --version >/dev/null 2>&1 || cargo install --locked cargo-nextest

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## make package: every function built for Lambda (arm64, release) with cargo-lambda, zipped, with
## the sizes printed. Slow (a cross build); not part of make test. cargo-lambda and zig come from
## PyPI into .venv-package (kept apart from the emulator's virtualenv).
PACKAGE_VENV := .venv-package
FUNCTIONS := programs promoters codes referrals invitations tenants webhooks dispatcher billing-consumer webhook-sender reconciler portal

package:
	test -x $(PACKAGE_VENV)/bin/cargo-lambda || ($(PYTHON) -m venv $(PACKAGE_VENV) && $(PACKAGE_VENV)/bin/pip install --quiet --disable-pip-version-check cargo-lambda==1.9.2 ziglang)
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/$(PACKAGE_VENV)/bin:$$PATH" cargo lambda build --release --arm64 --output-format zip $(addprefix --bin ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do printf '%-18s %9s bytes zipped\n' $$f $$(stat -c %s target/lambda/$$f/bootstrap.zip); done

## make sam-build: `sam build` exactly as the README's deploy path runs it (samconfig.toml: cached,
## not parallel), offline: cargo-lambda and zig from PyPI. Slow (release cross builds of every
## function); not part of make test, which checks samconfig.toml keeps the build serial.
sam-build: sam-venv
	test -x $(PACKAGE_VENV)/bin/cargo-lambda || ($(PYTHON) -m venv $(PACKAGE_VENV) && $(PACKAGE_VENV)/bin/pip install --quiet --disable-pip-version-check cargo-lambda==1.9.2 ziglang)
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/$(PACKAGE_VENV)/bin:$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam build
	@du -b .aws-sam/build/*/bootstrap | sort -k2

## make bench: every function's release binary run as Lambda runs it (a Runtime API served by the
## bench, the real runtime loop) against the emulator, beside a Python/boto3 handler of the same
## routes and a bare-SDK floor; prints a table and rewrites the generated part of BENCHMARKS.md.
## Figures, not a test: never part of make test. BENCH_ARGS passes options (--cold N --warm N --only F).
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell cksum < tests/bench/python/requirements.txt | cut -d' ' -f1)

bench-venv: $(BENCH_STAMP)

$(BENCH_STAMP): tests/bench/python/requirements.txt
	rm -rf $(BENCH_VENV)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/bench/python/requirements.txt
	touch $@

bench: venv bench-venv
	# The functions exactly as they ship (their own feature set), and the floor with them.
	cargo build --release $(addprefix -p ,$(FUNCTIONS)) -p bench-floor
	cargo build --release -p bench
	tests/emulator/with-emulator.sh 0 target/release/bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(SAM_VENV) $(PACKAGE_VENV) $(BENCH_VENV) target
