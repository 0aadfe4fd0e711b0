# Mirrorscope - the two commands: `make demo` and `make check`.
# Both install what is missing (scripts/deps.sh), then build with CMake.

BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
BUILD_DEB  ?= build-deb
BUILD_FUZZ ?= build-fuzz
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
# make fuzz: seconds per target, and which targets (tests/fuzz/fuzz_NAME.c).
FUZZ_TIME    ?= 60
FUZZ_TARGETS ?= decode pcap segindex catalog exprscan exprscan_bpf config brconfig bus appana rpc http searchsvc

.PHONY: all deps build build-asan build-tsan check unit demo bench fuzz deb clean

all: build

deps:
	./scripts/deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j $(JOBS)

# Everything again under AddressSanitizer + UndefinedBehaviorSanitizer (leaks too).
build-asan: deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DMSCOPE_SANITIZE=ON
	cmake --build $(BUILD_ASAN) -j $(JOBS)

# ThreadSanitizer, for the tests whose daemons hand data between threads
# (label concurrency; tests/tsan.supp names the uninstrumented libraries).
build-tsan: deps
	cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=Debug -DMSCOPE_TSAN=ON
	cmake --build $(BUILD_TSAN) -j $(JOBS)

check: build build-asan build-tsan
	cd $(BUILD_ASAN) && ctest --output-on-failure --timeout 600
	cd $(BUILD) && ctest --output-on-failure --timeout 600
	cd $(BUILD_TSAN) && ctest -L 'unit|concurrency' --output-on-failure --timeout 600

unit: build
	cd $(BUILD) && ctest -L unit --output-on-failure

# As root: the AWS topology in network namespaces (deploy/local); otherwise, or
# with MSCOPE_DEMO_LOOPBACK=1, one recorder on loopback.
demo: build
	@if [ "$$(id -u)" = 0 ] && [ -z "$$MSCOPE_DEMO_LOOPBACK" ]; then \
		./scripts/demo.sh --topology $(BUILD); else ./scripts/demo.sh $(BUILD); fi

bench: build
	./bench/run.sh $(BUILD)

# libFuzzer (clang) with ASan and UBSan: each target in turn for FUZZ_TIME
# seconds; new inputs stay in $(BUILD_FUZZ)/corpus, findings in
# $(BUILD_FUZZ)/findings (tests/fuzz/run.sh). make check replays the seeds.
fuzz:
	./scripts/deps.sh --fuzz
	cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DMSCOPE_FUZZ=ON -DMSCOPE_WERROR=OFF
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzz_targets
	./tests/fuzz/run.sh $(BUILD_FUZZ) $(FUZZ_TIME) $(FUZZ_TARGETS)

# The Debian package (deploy/systemd/README.md): a Release build of its own,
# then CPack; prints where the .deb is.
deb: deps
	cmake -S . -B $(BUILD_DEB) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
		-DMSCOPE_PACKAGE=ON -DBUILD_TESTING=OFF
	cmake --build $(BUILD_DEB) -j $(JOBS)
	rm -f $(BUILD_DEB)/mirrorscope_*.deb
	cd $(BUILD_DEB) && cpack -G DEB
	@echo "deb: $$(ls $(abspath $(BUILD_DEB))/mirrorscope_*.deb)"

clean:
	./scripts/demo.sh --clean
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ) $(BUILD_DEB)
