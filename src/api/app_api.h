// What the browser app needs beyond the OpenAI, Ollama and dormouse APIs. Like every
// other endpoint these are public: anything the app shows can be scripted.
//
//   GET  /, /assets/*            the app (embedded; strict CSP and security headers; no key)
//   GET  /api/events             server-sent events: "status" (memory + every model) on
//                                connect, after each transition and about once a second;
//                                "transition"; "progress" of loads in flight
//   GET  /api/status             the same "status" object, once
//   GET  /api/models             picker data: architecture, parameters, quantization, file
//                                size, memory estimate, state
//   GET  /api/settings, POST /api/settings {fields...}, DELETE /api/settings
//   GET  /api/conversations      sessions with title, system prompt and options
//   POST /api/sessions/{id}      {title?, options?}: rename, keep per-conversation options
//   GET  /api/search?q=TEXT      sessions whose title or messages contain TEXT
#pragma once

#include <nlohmann/json.hpp>

#include "api/http_server.h"
#include "lifecycle/events.h"

namespace dormouse::api {

// /api/conversations, POST /api/sessions/{id} and /api/search (app_sessions.cc).
void RegisterConversationRoutes(Router& router, ApiContext& ctx);

// The "status" object of /api/status and /api/events.
nlohmann::json StatusJson(ApiContext& ctx, const ProcessMemory& process,
                          const SystemMemory& system);
// One event as an SSE message ("event: NAME\ndata: JSON\n\n").
std::string SseMessage(const std::string& name, const nlohmann::json& data);
nlohmann::json TransitionJson(const TransitionRecord& t);
// A conversation's title: its name unless generated ("api-..."), else the start of its
// first user message.
std::string ConversationTitle(const std::string& name, const std::string& first_user_message);

}  // namespace dormouse::api
