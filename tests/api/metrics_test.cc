// The Prometheus text of /metrics and the model catalog behind /api/tags and /api/show.
#include <gtest/gtest.h>

#include <filesystem>

#include "api/dormouse_api.h"
#include "api/ollama_api.h"
#include "base/thread_pool.h"

namespace dormouse::api {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(Metrics, HistogramIsCumulative) {
  LatencyHistogram lh;
  for (double v : {0.001, 0.02, 0.5, 7.0}) lh.Observe(v);
  std::string h = HistogramText("x_seconds", "help", lh);
  EXPECT_TRUE(Has(h, "# HELP x_seconds help")) << h;
  EXPECT_TRUE(Has(h, "# TYPE x_seconds histogram"));
  EXPECT_TRUE(Has(h, "x_seconds_bucket{le=\"0.001\"} 1"));
  EXPECT_TRUE(Has(h, "x_seconds_bucket{le=\"0.025\"} 2"));
  EXPECT_TRUE(Has(h, "x_seconds_bucket{le=\"1\"} 3"));
  EXPECT_TRUE(Has(h, "x_seconds_bucket{le=\"10\"} 4"));
  EXPECT_TRUE(Has(h, "x_seconds_bucket{le=\"+Inf\"} 4"));
  EXPECT_TRUE(Has(h, "x_seconds_sum 7.521"));
  EXPECT_TRUE(Has(h, "x_seconds_count 4"));
}

TEST(Metrics, TextCoversMemoryModelsAndCounters) {
  MetricsInput in;
  in.process = {100 << 20, 60 << 20, 40 << 20, 0};
  in.model_names = {"a", "b\"q"};
  ModelStatus a;
  a.name = "a";
  a.state = ModelState::kReady;
  a.bytes = 1234;
  a.loads = 2;
  a.ejects_by_reason[Reason::kKeepAlive] = 1;
  in.models = {a};
  in.service.tokens_generated = 100;
  in.service.generate_seconds = 2;
  in.service.restore_seconds.Observe(0.004);
  in.service.load_seconds.Observe(0.2);
  in.service.load_seconds.Observe(0.3);
  in.snapshot_disk_bytes = 999;
  in.service.prefix_index_bytes = 4321;
  in.service.prefix_index_entries = 3;
  std::string t = MetricsText(in);
  EXPECT_TRUE(Has(t, "dormouse_resident_bytes{kind=\"anon\"} 62914560")) << t;
  EXPECT_TRUE(Has(t, "dormouse_resident_bytes{kind=\"file\"} 41943040"));
  EXPECT_TRUE(Has(t, "dormouse_model_state{model=\"a\",state=\"ready\"} 1"));
  EXPECT_TRUE(Has(t, "dormouse_model_state{model=\"a\",state=\"unloaded\"} 0"));
  EXPECT_TRUE(Has(t, "dormouse_model_state{model=\"b\\\"q\",state=\"unloaded\"} 1"));
  EXPECT_TRUE(Has(t, "dormouse_model_loads_total{model=\"a\"} 2"));
  EXPECT_TRUE(Has(t, "dormouse_model_ejects_total{model=\"a\",reason=\"keep_alive\"} 1"));
  EXPECT_TRUE(Has(t, "dormouse_generate_tokens_per_second 50"));
  EXPECT_TRUE(Has(t, "dormouse_snapshot_disk_bytes 999"));
  EXPECT_TRUE(Has(t, "dormouse_prefix_index_bytes 4321"));
  EXPECT_TRUE(Has(t, "dormouse_prefix_index_entries 3"));
  EXPECT_TRUE(Has(t, "dormouse_reload_seconds_count 2"));
  EXPECT_TRUE(Has(t, "dormouse_restore_seconds_bucket{le=\"0.005\"} 1"));
  // Every sample line belongs to a family announced with # TYPE.
  std::istringstream lines(t);
  std::set<std::string> typed;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# TYPE ", 0) == 0) {
      typed.insert(line.substr(7, line.find(' ', 7) - 7));
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    std::string name = line.substr(0, line.find_first_of("{ "));
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (name.size() > strlen(suffix) && name.ends_with(suffix) &&
          typed.count(name.substr(0, name.size() - strlen(suffix)))) {
        name = name.substr(0, name.size() - strlen(suffix));
      }
    }
    EXPECT_TRUE(typed.count(name)) << line;
  }
}

TEST(ModelCatalog, ReadsDetailsFromTheGgufHeader) {
  const std::string models = std::string(DM_SHARED_DIR) + "/models";
  ThreadPool pool(1);
  GgufModelLoader::Options lo;
  lo.models_dir = models;
  GgufModelLoader loader(lo, &pool, nullptr);
  ModelCatalog catalog(&loader);
  StatusOr<ModelDetails> q = catalog.Get("qwen2-20m-q8_0");
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->family, "qwen2");
  EXPECT_EQ(q->quantization, "Q8_0");
  EXPECT_NE(q->chat_template.find("im_start"), std::string::npos);
  EXPECT_GT(q->file_size, 0u);
  EXPECT_TRUE(q->model_info["tokenizer.ggml.tokens"].is_null());  // big arrays left out
  EXPECT_TRUE(q->model_info_verbose["tokenizer.ggml.tokens"].is_array());
  EXPECT_EQ(q->model_info["general.architecture"], "qwen2");
  StatusOr<ModelDetails> s = catalog.Get("stories260K");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->family, "llama");
  EXPECT_TRUE(s->chat_template.empty());
  EXPECT_FALSE(catalog.Get("../models/stories260K").ok());
  EXPECT_FALSE(catalog.Get("nope").ok());
}

}  // namespace
}  // namespace dormouse::api
