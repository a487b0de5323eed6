// The model-hash cache in the transcript database: a hit only while the file is unchanged,
// and safe to use from several loads at once.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "store/transcript_db.h"
#include "transcript_db_fixture.h"

namespace dormouse {
namespace {


using ModelHashCacheTest = TranscriptDbFixture;

TEST_F(ModelHashCacheTest, HitsOnlyWhileFileIsUnchanged) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  const std::string path = "/models/tiny.gguf";
  auto miss = db->CachedModelHash(path, 100, 5, 7);
  ASSERT_TRUE(miss.ok());
  EXPECT_FALSE(miss->has_value());

  ASSERT_TRUE(db->StoreModelHash(path, 100, 5, 7, "00ff00ff00ff00ff00ff00ff00ff00ff").ok());
  auto hit = db->CachedModelHash(path, 100, 5, 7);
  ASSERT_TRUE(hit.ok());
  ASSERT_TRUE(hit->has_value());
  EXPECT_EQ(**hit, "00ff00ff00ff00ff00ff00ff00ff00ff");

  EXPECT_FALSE(db->CachedModelHash(path, 101, 5, 7)->has_value());  // size
  EXPECT_FALSE(db->CachedModelHash(path, 100, 6, 7)->has_value());  // mtime
  EXPECT_FALSE(db->CachedModelHash(path, 100, 5, 8)->has_value());  // inode (replaced file)
  EXPECT_FALSE(db->CachedModelHash("/models/other.gguf", 100, 5, 7)->has_value());

  // Re-hashing after a change replaces the entry; the old identity no longer hits.
  ASSERT_TRUE(db->StoreModelHash(path, 200, 9, 7, "abcdef").ok());
  EXPECT_EQ(**db->CachedModelHash(path, 200, 9, 7), "abcdef");
  EXPECT_FALSE(db->CachedModelHash(path, 100, 5, 7)->has_value());

  EXPECT_FALSE(db->StoreModelHash(path, 1, 1, 1, "not hex").ok());
  EXPECT_FALSE(db->StoreModelHash(path, 1, 1, 1, "").ok());

  db.reset();
  db = Open();
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(**db->CachedModelHash(path, 200, 9, 7), "abcdef");
}

// Model loads run on several threads at once and share the loader's connection for the
// hash cache: those two methods serialize themselves (unguarded, concurrent statements on
// one connection fail with "SQL statements in progress" or worse).
TEST_F(ModelHashCacheTest, TakesConcurrentLoads) {
  auto db = Open();
  std::atomic<int> failures{0};
  auto worker = [&](int t) {
    for (int i = 0; i < 200; ++i) {
      const std::string path = "/models/m" + std::to_string(t) + "-" + std::to_string(i % 7);
      if (!db->StoreModelHash(path, 100 + i, 5, 7, "00ff").ok()) failures++;
      auto got = db->CachedModelHash(path, 100 + i, 5, 7);
      if (!got.ok() || !got->has_value()) failures++;
    }
  };
  std::thread a(worker, 0), b(worker, 1), c(worker, 2);
  a.join();
  b.join();
  c.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace dormouse
