# The two commands of the README: `make run` and `make test`. Everything else is a
# convenience for developers.
MODEL ?= ../shared/models/stories260K.gguf
PROMPT ?= Once upon a time
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: run test deps build test-sanitize bench format clean

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

# Untrusted-input parsers (GGUF, tokenizer metadata) under AddressSanitizer + UBSan.
# Untrusted-input parsers (GGUF, tokenizer metadata, chat templates, snapshots, transcripts),
# the kernels and the lifecycle state machine, under AddressSanitizer + UBSan.
SANITIZE_FILTER ?= Gguf*:Tok*:Model*Hostile*:Quant*:Kernel*:ChatTemplate*
test-sanitize: deps
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDORMOUSE_SANITIZE=ON >/dev/null
	cmake --build build-asan -j$(JOBS) --target engine_tests store_tests lifecycle_tests
	./build-asan/engine_tests --gtest_filter='$(SANITIZE_FILTER)' --gtest_brief=1
	./build-asan/store_tests --gtest_brief=1
	./build-asan/lifecycle_tests --gtest_filter='ModelManager*:MemoryProbe*:EventBus*:MemorySampler*' --gtest_brief=1

bench: build
	./$(BUILD)/dormouse bench ../shared/models/llama-58m-q8_0.gguf -t 2
	./$(BUILD)/dormouse bench ../shared/models/llama-58m-q4_k_m.gguf -t 2

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) build-asan
