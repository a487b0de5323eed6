// A fresh data directory per test, and TranscriptDb opened on it: the fixture of the
// transcript database's tests (transcript_db_test.cc, model_hash_cache_test.cc).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "store/transcript_db.h"

namespace dormouse {

class TranscriptDbFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "dm_transcript_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::unique_ptr<TranscriptDb> Open() {
    auto db = TranscriptDb::OpenOrError(dir_);
    EXPECT_TRUE(db.ok()) << db.status().message();
    return db.ok() ? std::move(db).value() : nullptr;
  }
  std::string DbPath() const {
    return (std::filesystem::path(dir_) / TranscriptDb::kFileName).string();
  }

  std::string dir_;
};

}  // namespace dormouse
