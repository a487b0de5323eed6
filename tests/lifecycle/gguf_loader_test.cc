// The production loader: names stay inside the models directory, and memory estimates
// are parsed from a GGUF header once per version of the file, not on every load.
#include "lifecycle/gguf_loader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace dormouse {
namespace {

namespace fs = std::filesystem;
const fs::path kShared = DM_SHARED_DIR;

TEST(GgufLoaderTest, EstimateIsCachedPerFileVersion) {
  const fs::path dir = fs::temp_directory_path() / ("dm_loader_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path file = dir / "m.gguf";
  fs::copy_file(kShared / "models" / "qwen2-20m-q4_0.gguf", file);
  GgufModelLoader::Options o;
  o.models_dir = dir.string();
  GgufModelLoader loader(o, nullptr, nullptr);
  StatusOr<uint64_t> first = loader.EstimateBytes("m");
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_GT(*first, fs::file_size(file));  // weights plus KV and buffers

  // Same size and mtime, unreadable header: the cached estimate answers, no re-parse.
  struct stat st;
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.write("XXXX", 4);
  }
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
  StatusOr<uint64_t> cached = loader.EstimateBytes("m");
  ASSERT_TRUE(cached.ok()) << cached.status().message();
  EXPECT_EQ(*cached, *first);

  // Another version of the file is read again (and here refused).
  fs::remove(file);
  fs::copy_file(kShared / "models" / "stories260K.gguf", file);
  StatusOr<uint64_t> other = loader.EstimateBytes("m");
  ASSERT_TRUE(other.ok()) << other.status().message();
  EXPECT_NE(*other, *first);
  EXPECT_FALSE(loader.EstimateBytes("../m").ok());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dormouse
