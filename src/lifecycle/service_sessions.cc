// Sessions as the API lists them: the transcripts (every conversation, also those of
// `dormouse chat`), joined with what is live in a loaded context and what is saved.
#include <filesystem>

#include "lifecycle/service_impl.h"

namespace dormouse {

// Every worker's published slots (a pointer copy each; no slot is locked).
std::vector<std::pair<std::string, std::shared_ptr<const LiveView>>> Service::Impl::LiveViews()
    const {
  std::vector<std::pair<std::string, std::shared_ptr<const LiveView>>> out;
  std::lock_guard<std::mutex> lock(workers_mu);
  for (const auto& [model, w] : workers) out.emplace_back(model, w->Published());
  return out;
}

std::vector<SessionInfo> Service::Sessions(const SessionScope& scope) const {
  Impl& d = *impl_;
  std::map<std::string, SessionInfo> by_id;
  {
    std::lock_guard<std::mutex> lock(d.db_mu);
    StatusOr<std::vector<SessionRecord>> all = d.db->ListSessions();
    if (all.ok()) {
      for (const SessionRecord& r : *all) {
        SessionInfo& i = by_id[r.id];
        i.id = r.id;
        i.model = r.model;
        i.state = "transcript";
        i.updated_at = r.updated_at;
        i.n_messages = r.n_messages;
        i.owner = r.owner;
      }
    }
  }
  for (const SnapshotInfo& snap : d.snapshots->List()) {
    SessionInfo& i = by_id[snap.key];
    i.id = snap.key;
    i.state = "saved";
    i.snapshot_bytes = snap.bytes;
    std::lock_guard<std::mutex> lock(d.index_mu);
    auto it = d.index.find(snap.key);
    if (it != d.index.end()) {
      i.n_tokens = i.n_tokens_saved = it->second.n_tokens;
      i.owner = it->second.owner;
    }
  }
  for (const auto& [model, view] : d.LiveViews()) {
    for (const LiveSession& s : *view) {
      if (d.Forgotten(s.id)) continue;
      SessionInfo& i = by_id[s.id];
      i.id = s.id;
      i.model = model;
      i.state = "live";
      i.n_tokens = s.n_tokens;
      i.n_tokens_saved = s.saved_tokens;
      i.owner = s.owner;
    }
  }
  std::vector<SessionInfo> out;
  for (auto& [id, info] : by_id) {
    if (!scope || info.owner == *scope) out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(), [](const SessionInfo& a, const SessionInfo& b) {
    return a.updated_at > b.updated_at || (a.updated_at == b.updated_at && a.id < b.id);
  });
  return out;
}

std::optional<SessionInfo> Service::Session(const std::string& id,
                                            const SessionScope& scope) const {
  for (SessionInfo& i : Sessions(scope)) {
    if (i.id == id) return std::move(i);
  }
  return std::nullopt;
}

StatusOr<std::vector<std::pair<std::string, std::string>>> Service::Transcript(
    const std::string& id, const SessionScope& scope) const {
  if (scope && !Session(id, scope)) return Status::Errorf("no session '{}'", id);
  std::lock_guard<std::mutex> lock(impl_->db_mu);
  DM_ASSIGN_OR_RETURN(std::vector<MessageRecord> msgs, impl_->db->Messages(id));
  std::vector<std::pair<std::string, std::string>> out;
  for (MessageRecord& m : msgs) out.emplace_back(std::move(m.role), std::move(m.content));
  return out;
}

std::optional<ServiceError> Service::DeleteSession(const std::string& id,
                                                   const SessionScope& scope) {
  Impl& d = *impl_;
  if (scope && !Session(id, scope)) {
    return MakeError(ErrorKind::kNotFound, fmt::format("no session '{}'", id));
  }
  bool existed = false;
  bool first_delete = false;
  std::lock_guard<std::mutex> persist(d.persist_mu);  // no checkpoint of it is half done
  {  // the workers drop its slots before their next request (or eject) and never save it
    std::lock_guard<std::mutex> lock(d.forgotten_mu);
    first_delete = d.forgotten.insert(id).second;
  }
  for (const auto& [model, view] : d.LiveViews()) {
    for (const LiveSession& s : *view) existed |= first_delete && s.id == id;
  }
  {
    std::lock_guard<std::mutex> lock(d.index_mu);
    existed |= d.index.erase(id) > 0;
  }
  if (SnapshotStore::CheckKey(id).ok() && d.snapshots->Exists(id)) {
    existed = true;
    if (Status s = d.snapshots->Remove(id); !s.ok())
      return MakeError(ErrorKind::kInternal, s.message());
  }
  {
    std::lock_guard<std::mutex> lock(d.db_mu);
    bool in_db = false;
    if (Status s = d.db->DeleteSession(id, &in_db); !s.ok()) {
      return MakeError(ErrorKind::kInternal, s.message());
    }
    existed |= in_db;
  }
  if (!existed) return MakeError(ErrorKind::kNotFound, fmt::format("no session '{}'", id));
  return std::nullopt;
}

}  // namespace dormouse
