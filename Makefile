# Thin wrapper over CMake: `make test` and `make demo` are the two commands of the README.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build test demo bench clean

all: build

deps:
	@scripts/setup-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) > $(BUILD).configure.log 2>&1 || (cat $(BUILD).configure.log; exit 1)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The demo runs only the cortex command, so only it is built (every test and benchmark first took
# over ten minutes on 2 cores); `make test` and `make build` still build everything.
demo: configure
	cmake --build $(BUILD) -j $(JOBS) --target cortex
	@scripts/demo.sh $(BUILD)

# Builds the benchmarks bench/tables.py names, then regenerates bench/RESULTS.md (scripts/bench.sh:
# ROUNDS=, THREADS=, QUICK=1, TABLES=, NOTE=; about 15 minutes on 2 cores, QUICK=1 about one).
bench: configure
	cmake --build $(BUILD) -j $(JOBS) --target $$(python3 scripts/bench_tables.py binaries)
	@scripts/bench.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD).configure.log
