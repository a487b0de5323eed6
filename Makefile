# The two commands of the README: `make run` and `make test`. Everything else is a
# convenience for developers.
MODEL ?= ../shared/models/stories260K.gguf
PROMPT ?= Once upon a time
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: run test deps build test-sanitize test-tsan test-arm fuzz bench format clean

run: build
	./$(BUILD)/dormouse run "$(MODEL)" -p "$(PROMPT)" -n 64 --temp 0

deps:
	bash scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	$(MAKE) test-sanitize
	$(MAKE) test-arm

# The sanitizer builds keep line tables only (-g1): their reports still name every frame's
# function, file and line, and each file compiles in about three quarters of the time of
# full debug info (-g), which the two builds from nothing pay on every CI run (measured on
# a 2-core Zen 3: 14.4 -> 10.2 s for src/api/runtime.cc under ASan, 8.4 -> 6.1 s for
# src/lifecycle/service.cc under TSan). Debugging a failure: make test-sanitize SANITIZE_DEBUG=-g
SANITIZE_DEBUG ?= -g1

# Untrusted-input parsers (GGUF, tokenizer metadata, chat templates, snapshots, transcripts,
# API requests), the sampler, the kernels and attention, and the lifecycle state machine,
# under AddressSanitizer + UBSan.
SANITIZE_FILTER ?= Gguf*:Tok*:PreTokenizer*:StreamDecoder*:Model*Hostile*:Quant*:Kernel*:ChatTemplate*:Sampler*:Attention*
SANITIZE_API_FILTER ?= JsonParams*:OpenAi*:Ollama*
test-sanitize: deps
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 $(SANITIZE_DEBUG) -DNDEBUG" -DDORMOUSE_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build build-asan -j$(JOBS) --target engine_tests store_tests lifecycle_tests api_tests
	cd build-asan && ./engine_tests --gtest_filter='$(SANITIZE_FILTER)' --gtest_brief=1
	cd build-asan && ./store_tests --gtest_brief=1
	cd build-asan && ./lifecycle_tests --gtest_filter='ModelManager*:MemoryProbe*:GgufLoader*:EventBus*:MemorySampler*:Conversation*:PrefixIndex*' --gtest_brief=1
	cd build-asan && ./api_tests --gtest_filter='$(SANITIZE_API_FILTER)' --gtest_brief=1
	$(MAKE) test-tsan

# The threads of the server core (model manager, service workers, chat sessions) under
# ThreadSanitizer. This build keeps assertions on (RelWithDebInfo alone adds -DNDEBUG), so
# the programmer-error checks run in `make test` too. The chat-session tests run on
# stories260K only (the threads are the same for every model; all seven take TSan over
# ten minutes); MemoryReclaim measures RSS, which TSan's shadow memory distorts. The
# server-process tests would report races only in the child's log, so they are left out;
# the in-process ones (the service, metrics, key scoping, worker ownership, injected
# allocation failures) run here.
TSAN_LIFECYCLE_FILTER ?= ModelManager*:MemoryProbe*:GgufLoader*:LoadedModel*:ChatPolicy*:Conversation*:*stories260K*
TSAN_API_FILTER ?= ServiceTest*:Metrics*:SessionScope*:WorkerOwnership*:Fault*
TSAN_TARGETS = lifecycle_tests $(if $(TSAN_API_FILTER),api_tests)
test-tsan: deps
	cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 $(SANITIZE_DEBUG)" -DDORMOUSE_TSAN=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build build-tsan -j$(JOBS) --target $(TSAN_TARGETS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ./lifecycle_tests --gtest_filter='$(TSAN_LIFECYCLE_FILTER)' --gtest_brief=1
	$(if $(TSAN_API_FILTER),cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ./api_tests --gtest_filter='$(TSAN_API_FILTER)' --gtest_brief=1)

# The engine cross-built for 64-bit ARM (NEON) and its kernel and attention tests run under
# qemu-user against their scalar references. Installs the cross compiler and qemu; see
# scripts/test-aarch64.sh (FILTER="*" runs every engine test, the models included: 16 min).
test-arm: deps
	bash scripts/test-aarch64.sh

# libFuzzer targets (clang), each run for FUZZ_SECONDS on its seeds in fuzz/corpus/<target>;
# what a run finds is kept in build-fuzz/corpus/<target>, crashes in build-fuzz/crash-*.
# Reproduce a crash: ./build-fuzz/<target> build-fuzz/crash-<target>-<hash>
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= gguf_fuzz jinja_fuzz vocab_fuzz snapshot_fuzz openai_request_fuzz ollama_request_fuzz
fuzz: deps
	cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
	  -DDORMOUSE_FUZZ=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build build-fuzz -j$(JOBS) --target $(FUZZ_TARGETS)
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus/$$t && \
	  ./build-fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	    -artifact_prefix=build-fuzz/crash-$$t- build-fuzz/corpus/$$t fuzz/corpus/$$t || exit 1; \
	done

# pp512/tg128 (and at depth 4096) of the shared models and of 1B-shaped files written once into
# $(BUILD)/bench-models, with the read bandwidth and decode roofline. Settings: see the script
# (e.g. make bench TARGETS="avx512 avx2" ROUNDS=3 MODELS=1b-q4_k_m DEPTH=0).
bench: build
	BUILD=$(BUILD) bash scripts/bench.sh

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
