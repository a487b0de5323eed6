// Running one request on a model's worker: render the prompt, find the longest cached
// prefix among the live slots and the saved snapshots, restore if needed, prefill the
// rest, generate, and keep the transcript.
#include <chrono>
#include <functional>
#include <iostream>
#include <random>
#include <set>

#include "lifecycle/service_impl.h"
#include "lifecycle/session_state.h"

namespace dormouse {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr size_t kMinUsefulReuse = 64;  // below this a diverging snapshot is not worth a read

double Since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

std::string NewSessionId() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mu);
  return fmt::format("{:016x}", rng());
}

// Where a request's prompt continues from.
struct Plan {
  std::vector<int32_t> tokens;  // the whole prompt
  int slot = -1;                // continue this live slot, or
  std::string snapshot;         // restore this snapshot first
  size_t reuse = 0;             // tokens the candidate already holds
  bool extends = false;         // the prompt continues the candidate's conversation
};

// A conversation the prompt may continue: a live slot (its tokens and text in memory) or
// a saved snapshot (only its hashes in memory; the rest is read from disk if chosen).
struct Candidate {
  int slot = -1;
  std::string key;
  const std::vector<int32_t>* tokens = nullptr;  // live slots
  const std::string* text = nullptr;             // live slots
  const PrefixEntry* entry = nullptr;            // snapshots
  size_t prompt_tokens = 0;  // a slot's last prompt: matching that much still continues it
};

// A chosen snapshot's tokens and text, read from disk (nullopt: unreadable).
struct Held {
  std::vector<int32_t> tokens;
  std::string text;
};
using SnapshotReader = std::function<std::optional<Held>(const std::string& key)>;

// How much of `text` the candidate's exact text is (0: the prompt does not continue it).
size_t TextPrefix(const Candidate& c, const std::string& text) {
  if (c.entry != nullptr) return TextContinues(*c.entry, text) ? c.entry->text_len : 0;
  if (c.tokens->empty() || c.text->empty() || !text.starts_with(*c.text)) return 0;
  return c.text->size();
}

// Tokens of `tokens` the candidate shares (for snapshots: exact when the prompt
// continues all of it, else to whole blocks).
size_t TokenPrefix(const Candidate& c, const std::vector<int32_t>& tokens,
                   const std::vector<uint64_t>& blocks) {
  if (c.entry == nullptr) return CommonPrefix(tokens, *c.tokens);
  if (TokensContinue(*c.entry, tokens)) return static_cast<size_t>(c.entry->n_tokens);
  return SharedBlockPrefix(*c.entry, blocks);
}

Plan MakePlan(const std::vector<Candidate>& cands, const Tokenizer& tok, const std::string& text,
              bool add_bos, const SnapshotReader& read) {
  Plan p;
  // Best: a conversation whose exact text the prompt starts with; only the rest is new.
  const Candidate* best = nullptr;
  size_t best_len = 0;
  for (const Candidate& c : cands) {
    const size_t len = TextPrefix(c, text);
    if (len == 0) continue;
    if (best == nullptr || len > best_len || (len == best_len && c.slot >= 0 && best->slot < 0)) {
      best = &c;
      best_len = len;
    }
  }
  std::optional<Held> loaded;
  if (best != nullptr && best->entry != nullptr) {
    loaded = read(best->key);
    if (!loaded || loaded->text.size() != best_len || !text.starts_with(loaded->text)) {
      best = nullptr;  // the snapshot changed or is unreadable: fall back to tokens
    }
  }
  if (best != nullptr) {
    const std::vector<int32_t>& held = loaded ? loaded->tokens : *best->tokens;
    p.tokens = *ContinueByText(held, loaded ? loaded->text : *best->text, tok, text);
    p.reuse = held.size();
    p.extends = true;
  } else {  // otherwise the longest common token prefix
    p.tokens = tok.Encode(text, add_bos, true);
    const std::vector<uint64_t> blocks = PrefixBlockHashes(p.tokens);
    for (const Candidate& c : cands) {
      size_t lcp = TokenPrefix(c, p.tokens, blocks);
      if (lcp > p.reuse || (lcp == p.reuse && lcp > 0 && c.slot >= 0 && best && best->slot < 0)) {
        p.reuse = lcp;
        best = &c;
      }
    }
    size_t held_size = best != nullptr && best->tokens ? best->tokens->size() : 0;
    if (best != nullptr && best->entry != nullptr) {  // the exact prefix, from disk
      loaded = read(best->key);
      p.reuse = loaded ? CommonPrefix(p.tokens, loaded->tokens) : 0;
      held_size = loaded ? loaded->tokens.size() : 1;
      if (!loaded) best = nullptr;
    }
    // Continuing: the whole cached conversation matches, or a longer prompt matches all
    // of it but the last reply (clients that resend the conversation with the reply they
    // got spelled differently). The same prompt again is another conversation (another
    // client, or a regenerate): it forks, reusing the rows, with its own session.
    if (best != nullptr) {
      p.extends =
          p.reuse == held_size || (best->prompt_tokens > 0 && p.reuse >= best->prompt_tokens &&
                                   p.tokens.size() > best->prompt_tokens);
    }
    // Forking a live slot costs a copy of rows; a snapshot costs a read from disk.
    if (best != nullptr && !p.extends && best->slot < 0 && p.reuse < kMinUsefulReuse) {
      best = nullptr;
    }
  }
  if (best != nullptr) {
    p.slot = best->slot;
    if (best->slot < 0) p.snapshot = best->key;
  } else {
    p.reuse = 0;
    p.extends = false;
  }
  return p;
}

ServiceError Err(ErrorKind kind, std::string message) {
  return MakeError(kind, std::move(message));
}

}  // namespace

// A free slot, or the least recently used one (its conversation saved first); not
// `keep` unless it is the only slot.
int Service::Impl::PickSlot(Worker& w, const LoadedModel& lm, int keep) {
  int best = -1;
  for (int i = 0; i < static_cast<int>(w.slots.size()); ++i) {
    if (i == keep) continue;
    if (w.slots[i].session_id.empty()) return i;
    if (best < 0 || w.slots[i].last_used < w.slots[best].last_used) best = i;
  }
  if (best < 0) best = keep >= 0 ? keep : 0;
  SaveSlot(w.slots[best], lm, SaveKind::kCheckpoint);
  w.slots[best].session_id.clear();
  return best;
}

// Live slots, then snapshots of this exact model that are not live (copied from the
// index into `saved`); with API keys, only the caller's own conversations.
static std::vector<Candidate> Candidates(
    const std::vector<std::pair<std::string, PrefixEntry>>& saved, Worker& w,
    const SessionScope& owner) {
  std::vector<Candidate> out;
  std::set<std::string> live;
  for (int i = 0; i < static_cast<int>(w.slots.size()); ++i) {
    const Slot& s = w.slots[i];
    if (s.session_id.empty() || s.conv.tokens().empty()) continue;
    live.insert(s.session_id);
    if (owner && s.owner != *owner) continue;
    out.push_back({i, s.session_id, &s.conv.tokens(), &s.conv.text(), nullptr, s.prompt_tokens});
  }
  for (const auto& [key, entry] : saved) {
    if (live.count(key) == 0) out.push_back({-1, key, nullptr, nullptr, &entry, 0});
  }
  return out;
}

std::variant<CompletionResult, ServiceError> Service::Impl::Run(Worker& w,
                                                                const CompletionRequest& req,
                                                                const PieceSink& sink) {
  if (Status s = Sampler::Validate(req.sampling); !s.ok()) {
    return Err(ErrorKind::kBadRequest, s.message());
  }
  StatusOr<ModelManager::Lease> lease = manager->Acquire(req.model, req.keep_alive);
  if (!lease.ok()) return Err(ErrorKind::kUnavailable, lease.status().message());
  const LoadedModel& lm = *lease->as<LoadedModelHandle>().model;
  const Tokenizer& tok = *lm.tokenizer;
  CompletionResult r;
  std::lock_guard<std::mutex> slots_lock(w.slots_mu);
  if (w.bound != &lm) {  // loaded (again) since this worker last ran: fresh slots
    w.slots.clear();
    w.slots.resize(static_cast<size_t>(std::max<int64_t>(1, options.contexts_per_model)));
    w.bound = &lm;
    r.load_seconds = lm.load_seconds;
  }
  DropForgotten(w);
  // 1. The prompt text.
  std::string text = req.prompt;
  std::string bos = tok.bos() >= 0 ? tok.TokenText(tok.bos()) : "";
  if (req.chat) {
    ChatTemplateInputs in;
    in.messages = req.messages;
    in.bos_token = bos;
    in.eos_token = tok.eos() >= 0 ? tok.TokenText(tok.eos()) : "";
    StatusOr<std::string> rendered = lm.chat_template->Render(in);
    if (!rendered.ok()) return Err(ErrorKind::kBadRequest, rendered.status().message());
    text = std::move(rendered).value();
  }
  const bool add_bos = !req.chat || !ChatTemplate::StartsWithBos(text, bos);
  // 2. The longest cached prefix.
  std::vector<std::pair<std::string, PrefixEntry>> saved;  // hashes only: a small copy
  {
    std::lock_guard<std::mutex> lock(index_mu);
    for (const auto& [key, entry] : index) {
      if (entry.fingerprint == lm.fingerprint && (!req.owner || entry.owner == *req.owner)) {
        saved.emplace_back(key, entry);
      }
    }
  }
  auto read = [&](const std::string& key) -> std::optional<Held> {
    StatusOr<SnapshotHeader> h = snapshots->ReadHeader(key);
    if (!h.ok()) return std::nullopt;
    StatusOr<SessionExtra> e = DecodeSessionExtra(h->extra);
    return Held{std::move(h->tokens), e.ok() ? e->text : ""};
  };
  Plan plan = MakePlan(Candidates(saved, w, req.owner), tok, text, add_bos, read);
  const int64_t n_ctx = ContextSize(*lm.model, options.context);
  if (plan.tokens.empty()) return Err(ErrorKind::kBadRequest, "the prompt is empty");
  if (static_cast<int64_t>(plan.tokens.size()) >= n_ctx) {
    return Err(ErrorKind::kTooLarge,
               fmt::format("the prompt has {} tokens; the context of model '{}' holds {}",
                           plan.tokens.size(), req.model, n_ctx));
  }
  // 3. The slot: continue a live one, fork a live one into another slot, or take one
  // (restoring a snapshot into it).
  const bool fork = plan.slot >= 0 && !plan.extends;
  const int si = plan.slot >= 0 && !fork ? plan.slot : PickSlot(w, lm, plan.slot);
  Slot& s = w.slots[si];
  w.active_slot = si;
  // Another key's rows never serve this request: reusing them would tell, through
  // cached_tokens, how much of this prompt that key had sent.
  if (si != plan.slot && s.owner != req.owner.value_or("")) s.conv.Clear();
  if (!s.conv.open()) {
    Status opened = s.conv.Open(*lm.model, options.context, w.pool.get());
    if (!opened.ok()) return Err(ErrorKind::kUnavailable, opened.message());
  }
  if (fork && si != plan.slot) {
    // The new conversation starts from a copy of the shared rows; on failure it
    // prefills from scratch.
    s.session_id.clear();
    if (Status st = s.conv.ForkFrom(w.slots[plan.slot].conv, plan.reuse); !st.ok()) {
      std::cerr << "warning: fork of session " << w.slots[plan.slot].session_id << ": "
                << st.message() << "\n";
    }
  }
  if (!plan.snapshot.empty()) {
    const auto t0 = SteadyClock::now();
    std::string index_owner;
    {
      std::lock_guard<std::mutex> lock(index_mu);
      auto it = index.find(plan.snapshot);
      if (it != index.end()) index_owner = it->second.owner;
    }
    StatusOr<SnapshotHeader> h = s.conv.Restore(*snapshots, plan.snapshot, lm.fingerprint);
    if (h.ok() && !h->journal_note.empty()) {
      std::cerr << "warning: snapshot " << plan.snapshot
                << ": journal ends early: " << h->journal_note << "\n";
    }
    if (h.ok()) {
      s.session_id = plan.snapshot;
      s.owner = index_owner;
      s.n_messages = 0;
      std::lock_guard<std::mutex> lock(db_mu);
      auto rec = db->GetSession(plan.snapshot);
      if (rec.ok() && rec->has_value()) s.n_messages = (*rec)->n_messages;
      r.restored_from_snapshot = true;
      r.restore_seconds = Since(t0);
      Count([&](ServiceMetrics& m) {
        m.snapshots_restored++;
        m.restore_seconds.Observe(r.restore_seconds);
      });
    } else {
      std::cerr << "warning: snapshot " << plan.snapshot
                << " not used, re-prefilling: " << h.status().message() << "\n";
      s.conv.Clear();
      plan.extends = false;
    }
  }
  if (fork && si == plan.slot) SaveSlot(s, lm, SaveKind::kCheckpoint);  // keep the old branch
  if (req.cancelled->load()) return Err(ErrorKind::kBadRequest, "the client went away");
  const bool continuing = plan.extends && !s.session_id.empty();
  if (!continuing) StartSession(s, req);
  // What the transcript already holds of a growing completion prompt.
  const size_t known =
      continuing && !req.chat && req.prompt.starts_with(s.conv.text()) ? s.conv.text().size() : 0;
  StatusOr<int64_t> prefilled = Prefill(s, plan.tokens, text, &r);
  if (!prefilled.ok()) return Err(ErrorKind::kInternal, prefilled.status().message());
  w.Publish();  // listings show the session while it generates
  auto out = Generate(s, lm, req, sink, *lease, std::move(r), known);
  w.Publish();
  return out;
}

void Service::Impl::StartSession(Slot& s, const CompletionRequest& req) {
  s.session_id = NewSessionId();
  s.owner = req.owner.value_or("");
  s.n_messages = 0;
  SessionRecord rec;
  rec.id = s.session_id;
  rec.owner = s.owner;
  rec.name = "api-" + s.session_id;
  rec.model = req.model;
  for (const ChatMessage& m : req.messages) {
    if (m.role == "system") rec.system_prompt = m.content;
  }
  std::lock_guard<std::mutex> lock(db_mu);
  StatusOr<SessionRecord> created = db->CreateSession(rec);
  if (!created.ok()) std::cerr << "warning: transcript: " << created.status().message() << "\n";
}

StatusOr<int64_t> Service::Impl::Prefill(Slot& s, const std::vector<int32_t>& tokens,
                                         const std::string& text, CompletionResult* r) {
  const auto t0 = SteadyClock::now();
  DM_ASSIGN_OR_RETURN(PrefillCounts counts, s.conv.Prefill(tokens, text));
  s.prompt_tokens = tokens.size();
  r->prompt_tokens = static_cast<int64_t>(tokens.size());
  r->cached_tokens = static_cast<int64_t>(counts.reused);
  r->prefilled_tokens = static_cast<int64_t>(counts.prefilled);
  r->prompt_seconds = Since(t0);
  return r->prefilled_tokens;
}

std::variant<CompletionResult, ServiceError> Service::Impl::Generate(
    Slot& s, const LoadedModel& lm, const CompletionRequest& req, const PieceSink& sink,
    const ModelManager::Lease& lease, CompletionResult r, size_t prompt_known) {
  const Tokenizer& tok = *lm.tokenizer;
  Sampler sampler(req.sampling, static_cast<int32_t>(tok.n_vocab()));
  const size_t window = static_cast<size_t>(std::max(req.sampling.repeat_last_n, 0));
  const std::vector<int32_t>& held = s.conv.tokens();
  for (size_t i = held.size() > window ? held.size() - window : 0; i < held.size(); ++i) {
    sampler.Accept(held[i]);
  }
  GenerateParams gp;
  gp.max_tokens = req.max_tokens;
  gp.stop = req.stop;
  if (req.chat) {
    for (const std::string& eot : lm.chat_template->EndOfTurnStrings()) gp.stop.push_back(eot);
  }
  auto on_piece = [&](std::string_view piece) {
    if (req.cancelled->load() || lease.cancel_requested()) return false;
    if (options.hooks.on_piece) options.hooks.on_piece(req);
    return !sink || sink(piece);
  };
  StatusOr<GenerateResult> g = s.conv.Generate(sampler, tok, gp, on_piece);
  if (!g.ok()) return Err(ErrorKind::kInternal, g.status().message());
  s.last_used = SteadyClock::now();
  r.text = g->text;
  r.stop = g->reason;
  r.session_id = s.session_id;
  r.completion_tokens = static_cast<int64_t>(g->tokens.size());
  r.generate_seconds = g->seconds;
  Record(s, req, r.text, prompt_known);
  Count([&](ServiceMetrics& m) {
    m.requests++;
    m.tokens_prefilled += r.prefilled_tokens;
    m.tokens_cached += r.cached_tokens;
    m.tokens_generated += r.completion_tokens;
    m.generate_seconds += r.generate_seconds;
    if (r.load_seconds > 0) m.load_seconds.Observe(r.load_seconds);
  });
  return r;
}

// The transcript holds more than the request resends: a turn whose reply was recorded
// but never reached the client (the server was killed, or the client gave up), retried
// with the same messages. When the request matches the transcript's start, the unseen
// tail is replaced by this reply, so the transcript stays the conversation the client
// has. False when it does not match (the caller appends as usual).
bool Service::Impl::ReplaceUnseenTail(Slot& s, const CompletionRequest& req,
                                      const std::string& reply) {
  std::lock_guard<std::mutex> lock(db_mu);
  StatusOr<std::vector<MessageRecord>> held = db->Messages(s.session_id);
  if (!held.ok() || held->size() < req.messages.size()) return false;
  std::vector<MessageRecord> all;
  for (size_t i = 0; i < req.messages.size(); ++i) {
    const MessageRecord& m = (*held)[i];
    if (m.role != req.messages[i].role || m.content != req.messages[i].content) return false;
    all.push_back(m);
  }
  all.push_back({0, "assistant", reply, 0});
  if (Status st = db->ReplaceMessages(s.session_id, all); !st.ok()) {
    std::cerr << "warning: transcript: " << st.message() << "\n";
    return true;
  }
  s.n_messages = static_cast<int64_t>(all.size());
  return true;
}

// Appends what the transcript lacks: the request's new messages (or the new prompt
// text) and the reply. A failure to record is logged; the answer still goes out.
void Service::Impl::Record(Slot& s, const CompletionRequest& req, const std::string& reply,
                           size_t prompt_known) {
  std::vector<MessageRecord> add;
  if (req.chat && s.n_messages > static_cast<int64_t>(req.messages.size()) &&
      ReplaceUnseenTail(s, req, reply)) {
    return;
  }
  if (req.chat) {
    size_t from = std::min<size_t>(static_cast<size_t>(s.n_messages), req.messages.size());
    if (from == req.messages.size() && from > 0) from = req.messages.size() - 1;
    for (size_t i = from; i < req.messages.size(); ++i) {
      add.push_back({0, req.messages[i].role, req.messages[i].content, 0});
    }
    add.push_back({0, "assistant", reply, 0});
  } else {  // only what the prompt adds to the conversation so far
    add.push_back({0, "prompt", req.prompt.substr(std::min(prompt_known, req.prompt.size())), 0});
    add.push_back({0, "completion", reply, 0});
  }
  std::lock_guard<std::mutex> lock(db_mu);
  if (Status st = db->AppendMessages(s.session_id, &add); !st.ok()) {
    std::cerr << "warning: transcript: " << st.message() << "\n";
    return;
  }
  s.n_messages = req.chat ? static_cast<int64_t>(req.messages.size()) + 1 : s.n_messages + 2;
}

}  // namespace dormouse
