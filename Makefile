# kv-tierd — the two commands a newcomer runs are `make demo` and `make test`.
# Both install missing Debian packages first (scripts/install-deps.sh, idempotent).

BUILD      ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps configure build demo test test-main test-asan test-tsan bench fuzz gpu-check gpu-bundle install clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

configure: $(BUILD)/build.ninja

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

# Starts kv-tierd with its embedded defaults, runs several client processes through libkvtier,
# prints a summary and stops the daemon.
demo: build
	@scripts/demo.sh $(BUILD)

# The whole suite: the normal build, then the core tests again under ASan+UBSan and under TSan.
test: build
	@scripts/run-tests.sh $(BUILD)

test-main: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

bench: build
	@scripts/bench.sh $(BUILD)

# Every fuzz target under libFuzzer (clang, ASan + UBSan) for FUZZ_SECONDS each (default 60), in
# build-fuzz; crashes land in build-fuzz/artifacts/. `make test` runs the same targets' seeds and
# deterministic mutations without clang.
fuzz:
	@scripts/install-deps.sh fuzz
	@scripts/fuzz.sh

# Every GPU test and GPU benchmark, results under bench/results/. Needs a CUDA device.
# On a GPU machine without this project's -dev packages: `make gpu-bundle` on a build machine, carry
# gpu-bundle.tar.gz (or gpu-bundle/) over, and run `make gpu-check GPU_BUNDLE=gpu-bundle.tar.gz`
# there (nothing is built).
GPU_BUNDLE ?=
ifeq ($(GPU_BUNDLE),)
gpu-check: build
	@scripts/gpu-check.sh $(BUILD)
else
gpu-check:
	@scripts/gpu-check.sh --bundle $(GPU_BUNDLE)
endif

gpu-bundle: build
	@scripts/gpu-bundle.sh $(BUILD) gpu-bundle

PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf build build-asan build-tsan build-fuzz
