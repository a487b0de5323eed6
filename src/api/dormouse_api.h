// The dormouse API: what the memory lifecycle adds to the OpenAI and Ollama shapes.
//
//   POST   /api/eject {model, level: "warm"|"cold", force}  -> what the eject freed
//   GET    /api/sessions                                    -> every conversation
//   GET    /api/sessions/{id}                               -> one, with its transcript
//   DELETE /api/sessions/{id}                               -> forget it (transcript, snapshot)
//   GET    /metrics                                         -> Prometheus text format
//   GET    /health                                          -> {"status": "ok"}; no API key
//
// Errors use {"error": "message"}, like Ollama's.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lifecycle/memory_probe.h"
#include "lifecycle/model_manager.h"
#include "lifecycle/service.h"

namespace dormouse::api {

// The session and timings of one completion: our extension to both APIs' responses.
nlohmann::json DormouseTimings(const CompletionResult& r);
nlohmann::json SessionJson(const SessionInfo& s);
nlohmann::json EjectJson(const EjectReport& r);

// Everything /metrics reports, gathered so the text is a pure function (tested alone).
struct MetricsInput {
  ServiceMetrics service;
  std::vector<std::string> model_names;  // every model, loaded or not
  std::vector<ModelStatus> models;       // the manager's view of those it has seen
  ProcessMemory process;
  uint64_t snapshot_disk_bytes = 0;
};
std::string MetricsText(const MetricsInput& in);

// One Prometheus histogram (cumulative _bucket lines with le, then _sum and _count).
std::string HistogramText(const std::string& name, const std::string& help,
                          const LatencyHistogram& h);
// A label value with \, " and newlines escaped.
std::string LabelValue(const std::string& v);

}  // namespace dormouse::api
