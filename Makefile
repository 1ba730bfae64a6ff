# The project's commands. README.md lists the ones a newcomer needs; .ci/run runs `make test`.
.PHONY: test check demo control-plane tools lint fmt manifests fuzz bench-webhooks bench-operator

CARGO ?= cargo

## test: provision the test control plane if needed, check formatting and lints, fuzz the
## webhook handlers for a minute, run every test
test: control-plane tools lint fuzz
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --lib --bins --tests

## check: the fast loop: formatting, lints, unit, golden, router and CLI tests (no real
## component started; a few minutes warm)
check:
	bash hack/check.sh

## fuzz: libFuzzer over the webhook handlers for FUZZ_SECONDS (default 60)
fuzz:
	bash hack/fuzz.sh

## tools: install the other real components the system tests start (Prometheus)
tools:
	@bash hack/tools.sh

## control-plane: build (once, cached) or find kube-apiserver + etcd + kubectl for the tests
control-plane:
	@bash hack/control-plane.sh >/dev/null

## lint: rustfmt and clippy with warnings as errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## fmt: format the code
fmt:
	$(CARGO) fmt --all

## manifests: regenerate the generated parts of deploy/ (CRDs, webhook registrations)
manifests:
	$(CARGO) run -q -p kaas-manifests -- deploy


## bench-webhooks: admission round trips over TLS vs a constant-answer baseline, where one
## call's CPU goes, and KaasCluster writes per second through a real kube-apiserver with
## kaas-webhooks vs a constant-allow webhook vs none (bench-results/)
bench-webhooks: control-plane
	$(CARGO) bench -p kaas-webhooks --bench admission
	$(CARGO) bench -p kaas-webhooks --bench breakdown
	$(CARGO) build --release -p kaas-webhooks
	$(CARGO) bench -p kaas-webhooks --bench apiserver

## bench-operator: 10,000 Docker clusters through the operator vs plain server-side apply,
## spec-change latency, restart (bench-results/)
bench-operator: control-plane
	$(CARGO) build --release -p kaas-operator-docker
	$(CARGO) bench -p kaas-e2e --bench operator

## demo: the whole system on this machine: API servers, the three operators, the CAPI stand-in, the examples, a live table
demo:
	$(CARGO) build --workspace --bins
	target/debug/kaas-demo
