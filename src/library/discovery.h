// GGUF models other tools already downloaded, found where each tool keeps them and used
// in place (no copy): Ollama's blob store (manifests name the blobs), LM Studio's and
// GPT4All's model folders, and the Hugging Face hub cache. Paths follow each tool's
// documented defaults and environment variables.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dormouse {

struct DiscoveredModel {
  std::string name;    // "llama3.2:1b" (Ollama), else the file name without .gguf
  std::string path;    // the file itself (symlinks resolved), read in place
  std::string source;  // "ollama", "lmstudio", "gpt4all", "huggingface"
  uint64_t size = 0;
};

// Where each tool keeps its models; "" = not looked at.
struct StoreDirs {
  std::string ollama;           // $OLLAMA_MODELS, else ~/.ollama/models (or the Linux service's)
  std::string lmstudio;         // <home in ~/.lmstudio-home-pointer, else ~/.lmstudio>/models
  std::string lmstudio_legacy;  // ~/.cache/lm-studio/models (LM Studio before 0.3)
  std::string gpt4all;          // modelPath in GPT4All.ini, else $XDG_DATA_HOME/nomic.ai/GPT4All
  std::string hf_hub;  // $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub

  using GetEnv = std::function<const char*(const char*)>;
  // Resolves every store's directory from the environment (default: the process's).
  static StoreDirs FromEnvironment(const GetEnv& getenv = nullptr);
};

std::vector<DiscoveredModel> DiscoverOllama(const std::string& models_dir);
std::vector<DiscoveredModel> DiscoverLmStudio(const std::string& models_dir);
std::vector<DiscoveredModel> DiscoverGpt4All(const std::string& models_dir);
std::vector<DiscoveredModel> DiscoverHfCache(const std::string& hub_dir);
// Every store, in that order, without duplicates of the same file.
std::vector<DiscoveredModel> DiscoverAll(const StoreDirs& dirs);

}  // namespace dormouse
