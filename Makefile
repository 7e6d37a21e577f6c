# The two commands: `make demo` and `make test`. Both install what is missing first.
# `make test` runs every test on the normal build, then the threaded and unit
# tests again under ASan+UBSan (build-asan/, `make test-asan`) and TSan
# (build-tsan/, `make test-tsan`).
BUILD ?= build
JOBS ?= 2
# Tests run four at a time: they wait on the broker and the daemons they
# start far more than they compute (a whole normal run at -j2: 88 CPU
# seconds in 304 s; at -j4: 158 s, the same tests passing).
TEST_JOBS ?= 4
ARGS ?=

# What the sanitizer builds build, and so run: every ctest test carries the
# label of the target it needs (tests/CMakeLists.txt). The daemon's threads run
# under the sanitizer because the integration tests start the sanitized
# `cxpulse`. Not here: the allocation tests and benchmarks (not built with a
# sanitizer), gen_command_test (the generator CLI, no daemon threads), and the
# oracle's tests (oracle_test, differential_test: they check numbers against a
# reference; the daemon paths they drive run sanitized in pipeline_test and
# centre_test), crash_test (200,000 events and ten restarts, too slow
# sanitized; restore, transactions and hand-over run sanitized in
# rebalance_state_test and scale_out_test) and broker_faults_test.
SANITIZER_TARGETS := cxpulse unit_tests kpi_test kpi_state_test spsc_ring_test producer_marks_test changelog_reader_test pipeline_test reload_test scale_out_test centre_test rule_commands_test rebalance_state_test
empty :=
space := $(empty) $(empty)
SANITIZER_LABELS := ^($(subst $(space),|,$(SANITIZER_TARGETS)))$$

.PHONY: deps build demo test test-asan test-tsan clean

deps:
	bash deploy/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	$(BUILD)/processor/cxpulse demo $(ARGS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(TEST_JOBS)
	$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory test-tsan

build-asan/CMakeCache.txt:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCXPULSE_SANITIZE=address

build-tsan/CMakeCache.txt:
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCXPULSE_SANITIZE=thread

# The sanitizer options (halt on the first report, suppressions) are set on
# each test by CMake, so a plain `ctest --test-dir build-tsan` uses them too.
test-asan test-tsan: test-%: deps build-%/CMakeCache.txt
	cmake --build build-$* -j$(JOBS) --target $(SANITIZER_TARGETS)
	ctest --test-dir build-$* --output-on-failure -j$(TEST_JOBS) -L '$(SANITIZER_LABELS)'

clean:
	rm -rf $(BUILD) build-asan build-tsan
