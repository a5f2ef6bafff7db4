# psi — thin driver around CMake/CTest. See README.md.
#   make            build (build/)
#   make run        set up, build, run psi on $MODEL (no MODEL: chat with Llama 3.2 1B from the Hub)
#   make test       set up, build, run every test
#   make test-asan  the test suite built with AddressSanitizer + UBSan (build-asan/)
#   make test-tsan  the threaded tests (pool, contexts, run/chat, psi serve) under ThreadSanitizer (build-tsan/)
#   make bench      model speed on the Llama-3.2-1B shape (bench/run_bench.py; LLAMA_BENCH= compares)
#   make bench-tokenizer  tokenizer throughput (MB/s) on both Llama vocabularies
#   make bench-kernels    single-thread matrix-product kernel throughput per type and CPU path
#   make deps       install missing Debian packages (as root), else list them

# Debian packages the build and tests need. npm counts as present when an npm
# command exists (NodeSource's nodejs package ships its own and conflicts with Debian's npm).
DEB_PACKAGES := build-essential cmake pkg-config libjansson-dev libsodium-dev libpcre2-dev libmicrohttpd-dev libcurl4-openssl-dev \
                libsimde-dev curl python3 nodejs npm
PSI_TEST_DATA ?= $(abspath ../shared/data)
export PSI_TEST_DATA
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
MODEL ?=
PROMPT ?= Once upon a time

.PHONY: all build deps run test test-asan test-tsan bench bench-tokenizer bench-kernels clean format

all: build

deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  if [ "$$p" = npm ] && command -v npm >/dev/null; then continue; fi; \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else \
	    echo "missing Debian packages:$$missing"; \
	    echo "install them with: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

build/CMakeCache.txt:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release

build: deps build/CMakeCache.txt
	cmake --build build -j $(JOBS)

# With no MODEL: chat with Llama 3.2 1B Instruct (Q4_K_M, pulled from Hugging
# Face on first use) when it is cached or the Hub answers; offline, one line
# saying so, then the stories260K demo when the test data is there.
DEFAULT_MODEL := hf:bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M
run: build
	@if [ -n "$(MODEL)" ]; then \
	  ./build/psi run -m "$(MODEL)" -p "$(PROMPT)" -n 128; \
	elif ./build/psi list 2>/dev/null | grep -q '^hf/bartowski/Llama-3.2-1B-Instruct-GGUF/' || \
	     curl -s -o /dev/null --max-time 10 "$${PSI_HF_ENDPOINT:-https://huggingface.co}/api/models/bartowski/Llama-3.2-1B-Instruct-GGUF"; then \
	  echo "MODEL not set: chatting with Llama 3.2 1B Instruct Q4_K_M ($(DEFAULT_MODEL); make run MODEL=file.gguf for another)"; \
	  ./build/psi chat -m "$(DEFAULT_MODEL)"; \
	else \
	  echo "Cannot reach the Hugging Face Hub to pull $(DEFAULT_MODEL): give a local file with make run MODEL=path/to/model.gguf"; \
	  if [ -f "$(PSI_TEST_DATA)/models/stories260K.gguf" ]; then \
	    ./build/psi run -m "$(PSI_TEST_DATA)/models/stories260K.gguf" -p "$(PROMPT)" -n 200 -c 512 --temp 0; \
	  fi; \
	fi

test: build
	cd build && ctest --output-on-failure -j $(JOBS)

bench: build
	python3 bench/run_bench.py

bench-tokenizer: build
	./build/bench/bench_tokenizer

bench-kernels: build
	./build/bench/bench_kernels 2048 65536 64

build-asan/CMakeCache.txt:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DPSI_SANITIZE=ON

test-asan: deps build-asan/CMakeCache.txt
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS)

# ThreadSanitizer on the tests that run threads against each other: the
# pool, the library's contexts, psi run/chat, and psi serve's batching
# engine under concurrent streams, disconnects, slow clients, shutdown, the
# guard and the prompt cache (the kernels are built without it: CMakeLists.txt).
# Fails on any report, whatever the tests' own exit status (a report in a
# server the tests started and stopped would not otherwise fail them).
TSAN_TARGETS := psi test_threadpool test_api test_stories test_guard
TSAN_TESTS := test_threadpool|test_api|test_stories|test_cli|test_serve_
build-tsan/CMakeCache.txt:
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPSI_TSAN=ON

test-tsan: deps build-tsan/CMakeCache.txt
	cmake --build build-tsan -j $(JOBS) --target $(TSAN_TARGETS)
	rm -rf build-tsan/tsan-reports && mkdir -p build-tsan/tsan-reports
	cd build-tsan && TSAN_OPTIONS=halt_on_error=0:second_deadlock_stack=1:log_path=$(CURDIR)/build-tsan/tsan-reports/report \
	  ctest --output-on-failure -j $(JOBS) -R '$(TSAN_TESTS)'
	@if ls build-tsan/tsan-reports/report.* >/dev/null 2>&1; then \
	  echo "ThreadSanitizer reported:"; cat build-tsan/tsan-reports/report.*; exit 1; \
	fi
	@echo "ThreadSanitizer: no reports"

format:
	clang-format -i include/*.h src/*.[ch] src/kernels/*.[ch] tools/psi/*.[ch] tests/*.[ch]

clean:
	rm -rf build build-asan build-tsan build-clang
