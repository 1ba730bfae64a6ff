# The project's commands. README.md lists the ones a newcomer needs; .ci/run runs `make test`.
.PHONY: test control-plane lint fmt manifests

CARGO ?= cargo

## test: provision the test control plane if needed, check formatting and lints, run every test
test: control-plane lint
	$(CARGO) test --workspace --all-targets

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

