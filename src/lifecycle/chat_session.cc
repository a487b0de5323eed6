#include "lifecycle/chat_session.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "lifecycle/session_state.h"

namespace dormouse {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

ChatSession::ChatSession(SessionRecord record, std::vector<MessageRecord> messages,
                         SamplerParams sampling)
    : record_(std::move(record)), messages_(std::move(messages)), sampling_(sampling) {}

Status ChatSession::Attach(const LoadedModel& model, ContextParams params) {
  Detach();
  DM_RETURN_IF_ERROR(Sampler::Validate(sampling_));
  DM_RETURN_IF_ERROR(conv_.Open(*model.model, params, model.pool));
  sampler_ = std::make_unique<Sampler>(sampling_, static_cast<int32_t>(conv_.ctx().n_vocab()));
  model_ = &model;
  return Status::Ok();
}

void ChatSession::Detach() {
  conv_.Close();
  sampler_.reset();
  model_ = nullptr;
}

std::string ChatSession::EncodeExtra() const {
  return EncodeSessionExtra({sampler_ ? sampler_->SaveState() : "", conv_.text(), window_start_});
}

Status ChatSession::DecodeExtra(const std::string& extra) {
  DM_ASSIGN_OR_RETURN(SessionExtra e, DecodeSessionExtra(extra));
  if (e.window_start > messages_.size()) {
    return Status::Error("snapshot window is past the transcript");
  }
  // Other sampling settings than the saved ones: keep the fresh sampler, not an error.
  if (sampler_) (void)sampler_->LoadState(e.sampler_state);
  window_start_ = static_cast<size_t>(e.window_start);
  return Status::Ok();
}

StatusOr<SnapshotSaveResult> ChatSession::Save(SnapshotStore& store,
                                               const SnapshotWriteOptions& options) {
  if (!attached()) return Status::Errorf("session '{}' has no loaded context", record_.name);
  return conv_.Save(store, record_.id, model_->fingerprint, EncodeExtra(), options);
}

StatusOr<SnapshotSaveResult> ChatSession::Checkpoint(SnapshotStore& store,
                                                     const SnapshotWriteOptions& options) {
  if (!attached()) return Status::Errorf("session '{}' has no loaded context", record_.name);
  return conv_.Checkpoint(store, record_.id, model_->fingerprint, EncodeExtra(), options, nullptr);
}

RestoreReport ChatSession::Restore(SnapshotStore& store) {
  RestoreReport r;
  const auto t0 = std::chrono::steady_clock::now();
  if (!attached()) {
    r.fallback_reason = "no model is loaded";
    return r;
  }
  conv_.Clear();
  if (!store.Exists(record_.id)) {
    r.fallback_reason = "no snapshot saved yet";
    return r;
  }
  StatusOr<SnapshotHeader> h = conv_.Restore(store, record_.id, model_->fingerprint);
  Status s = h.ok() ? DecodeExtra(h->extra) : h.status();
  if (!s.ok()) {
    conv_.Clear();
    r.fallback_reason = s.message();
    return r;
  }
  r.restored = true;
  r.n_restored = static_cast<int64_t>(conv_.tokens().size());
  r.seconds = SecondsSince(t0);
  return r;
}

int64_t ChatSession::Reserve(const TurnOptions& o) const {
  const int64_t n_ctx = conv_.ctx().n_ctx();
  return o.max_tokens > 0 ? std::min(o.max_tokens, n_ctx / 2) : std::min<int64_t>(512, n_ctx / 4);
}

StatusOr<ChatSession::Prompt> ChatSession::RenderWindow(size_t window_start) {
  const Tokenizer& tok = *model_->tokenizer;
  ChatTemplateInputs in;
  in.add_generation_prompt = true;
  if (tok.bos() >= 0) in.bos_token = tok.TokenText(tok.bos());
  if (tok.eos() >= 0) in.eos_token = tok.TokenText(tok.eos());
  size_t first = 0;
  if (!messages_.empty() && messages_[0].role == "system") {
    in.messages.push_back({"system", messages_[0].content});
    first = 1;
  }
  for (size_t i = std::max(first, window_start); i < messages_.size(); ++i) {
    in.messages.push_back({messages_[i].role, messages_[i].content});
  }
  Prompt p;
  DM_ASSIGN_OR_RETURN(p.text, model_->chat_template->Render(in));
  size_t kept = 0, redone = 0;
  if (auto continued = conv_.Continue(tok, p.text, &kept, &redone)) {
    p.n_new = static_cast<int64_t>(continued->size() - kept - redone);
    p.tokens = std::move(*continued);
    return p;
  }
  const bool renders_bos = ChatTemplate::StartsWithBos(p.text, in.bos_token);
  p.tokens = tok.Encode(p.text, !renders_bos, true);
  // Without a cached prefix, the new part is what the last message added to the render.
  in.messages.pop_back();
  in.add_generation_prompt = false;
  StatusOr<std::string> before = model_->chat_template->Render(in);
  p.n_new = static_cast<int64_t>(p.tokens.size());
  if (before.ok() && !before->empty() && p.text.starts_with(*before)) {
    p.n_new = static_cast<int64_t>(
        tok.Encode(std::string_view(p.text).substr(before->size()), false, true).size());
  }
  return p;
}

StatusOr<ChatSession::Prompt> ChatSession::BuildPrompt(int64_t reserve, std::string* notice) {
  const int64_t n_ctx = conv_.ctx().n_ctx();
  size_t start = window_start_;
  for (;;) {
    DM_ASSIGN_OR_RETURN(Prompt p, RenderWindow(start));
    if (static_cast<int64_t>(p.tokens.size()) + reserve <= n_ctx) {
      if (start != window_start_) {
        *notice = fmt::format(
            "the conversation outgrew the {}-token context: the {} oldest messages are out of "
            "the model's view (the system prompt is kept; the transcript keeps everything)",
            n_ctx, start - (messages_[0].role == "system" ? 1 : 0));
        window_start_ = start;
      }
      return p;
    }
    // Drop the oldest exchange: move the window to the next user message.
    size_t next = std::max<size_t>(start, messages_[0].role == "system" ? 1 : 0) + 1;
    while (next < messages_.size() && messages_[next].role != "user") ++next;
    if (next >= messages_.size()) {
      return Status::Errorf(
          "the message is too long: with the system prompt it needs {} tokens, and the "
          "context holds {} (keeping {} for the reply)",
          p.tokens.size(), n_ctx, reserve);
    }
    start = next;
  }
}

StatusOr<int64_t> ChatSession::Prefill(const Prompt& p, TurnReport* report) {
  const auto t0 = std::chrono::steady_clock::now();
  DM_ASSIGN_OR_RETURN(PrefillCounts counts, conv_.Prefill(p.tokens, p.text));
  for (size_t i = counts.reused; i < p.tokens.size(); ++i) sampler_->Accept(p.tokens[i]);
  report->n_prompt = static_cast<int64_t>(p.tokens.size());
  report->n_reused = static_cast<int64_t>(counts.reused);
  report->n_prefilled = static_cast<int64_t>(counts.prefilled);
  report->n_new = std::min(p.n_new, report->n_prefilled);
  report->n_recomputed = report->n_prefilled - report->n_new;
  report->prefill_seconds = SecondsSince(t0);
  return report->n_prefilled;
}

StatusOr<TurnReport> ChatSession::Send(const std::string& user_text, const TurnOptions& options,
                                       const PieceCallback& on_piece, TranscriptDb* db) {
  if (!attached()) return Status::Errorf("session '{}' has no loaded model", record_.name);
  TurnReport report;
  MessageRecord user{0, "user", user_text, 0};
  messages_.push_back(user);
  StatusOr<Prompt> prompt = BuildPrompt(Reserve(options), &report.notice);
  if (!prompt.ok()) {
    messages_.pop_back();  // refused: the transcript does not keep what was never answered
    return prompt.status();
  }
  if (db != nullptr) DM_RETURN_IF_ERROR(db->AppendMessage(record_.id, &messages_.back()));
  DM_RETURN_IF_ERROR(Prefill(*prompt, &report).status());

  GenerateParams gp;
  gp.max_tokens = options.max_tokens;
  gp.stop = options.stop;
  // Turn ends the model may spell as text (e.g. "<|im_end|>" where it is not a token).
  for (const std::string& eot : model_->chat_template->EndOfTurnStrings()) gp.stop.push_back(eot);
  DM_ASSIGN_OR_RETURN(GenerateResult g,
                      conv_.Generate(*sampler_, *model_->tokenizer, gp, on_piece, options.observe));
  report.reply = g.text;
  report.stop = g.reason;
  report.n_generated = static_cast<int64_t>(g.tokens.size());
  report.generate_seconds = g.seconds;
  MessageRecord reply{0, "assistant", g.text, 0};
  messages_.push_back(reply);
  if (db != nullptr) DM_RETURN_IF_ERROR(db->AppendMessage(record_.id, &messages_.back()));
  return report;
}

}  // namespace dormouse
