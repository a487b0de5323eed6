#include "engine/gguf_writer.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/quants.h"

namespace dormouse {
namespace {

template <typename T>
void Put(std::vector<uint8_t>& out, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.insert(out.end(), b, b + sizeof(T));
}

void PutString(std::vector<uint8_t>& out, const std::string& s) {
  Put(out, uint64_t{s.size()});
  out.insert(out.end(), s.begin(), s.end());
}

// Bytes of one integer element of a GGUF array, 0 for non-integer types.
int IntBytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
      return 8;
    default:
      return 0;
  }
}

void PutInt(std::vector<uint8_t>& out, GgufValueType t, int64_t v) {
  uint8_t b[8];
  std::memcpy(b, &v, 8);  // little-endian: the low bytes are the narrower value
  out.insert(out.end(), b, b + IntBytes(t));
}

Status PutScalar(std::vector<uint8_t>& out, GgufValueType t, const GgufValue& v) {
  if (IntBytes(t) > 0) {
    PutInt(out, t, std::get<int64_t>(v.data));
  } else if (t == GgufValueType::kFloat32) {
    Put(out, static_cast<float>(std::get<double>(v.data)));
  } else if (t == GgufValueType::kFloat64) {
    Put(out, std::get<double>(v.data));
  } else if (t == GgufValueType::kString) {
    PutString(out, std::get<std::string>(v.data));
  } else {
    return Status::Errorf("unsupported metadata value type {}", static_cast<uint32_t>(t));
  }
  return Status::Ok();
}

Status PutArray(std::vector<uint8_t>& out, const GgufArray& a) {
  Put(out, static_cast<uint32_t>(a.elem_type));
  Put(out, a.size());
  if (a.elem_type == GgufValueType::kString) {
    for (const std::string& s : a.strings) PutString(out, s);
  } else if (IntBytes(a.elem_type) > 0) {
    for (int64_t v : a.ints) PutInt(out, a.elem_type, v);
  } else if (a.elem_type == GgufValueType::kFloat32) {
    for (double f : a.floats) Put(out, static_cast<float>(f));
  } else if (a.elem_type == GgufValueType::kFloat64) {
    for (double f : a.floats) Put(out, f);
  } else {
    return Status::Error("nested metadata arrays are not supported");
  }
  return Status::Ok();
}

}  // namespace

void GgufWriter::Key(const std::string& key, GgufValueType type) {
  PutString(kv_, key);
  Put(kv_, static_cast<uint32_t>(type));
  ++n_kv_;
}

void GgufWriter::U32(const std::string& key, uint32_t v) {
  Key(key, GgufValueType::kUint32);
  Put(kv_, v);
}

void GgufWriter::F32(const std::string& key, float v) {
  Key(key, GgufValueType::kFloat32);
  Put(kv_, v);
}

void GgufWriter::Str(const std::string& key, const std::string& v) {
  Key(key, GgufValueType::kString);
  PutString(kv_, v);
}

void GgufWriter::StrArray(const std::string& key, const std::vector<std::string>& v) {
  GgufArray a;
  a.elem_type = GgufValueType::kString;
  a.strings = v;
  Key(key, GgufValueType::kArray);
  (void)PutArray(kv_, a);
}

void GgufWriter::F32Array(const std::string& key, const std::vector<float>& v) {
  Key(key, GgufValueType::kArray);
  Put(kv_, static_cast<uint32_t>(GgufValueType::kFloat32));
  Put(kv_, uint64_t{v.size()});
  for (float f : v) Put(kv_, f);
}

void GgufWriter::I32Array(const std::string& key, const std::vector<int32_t>& v) {
  Key(key, GgufValueType::kArray);
  Put(kv_, static_cast<uint32_t>(GgufValueType::kInt32));
  Put(kv_, uint64_t{v.size()});
  for (int32_t i : v) Put(kv_, i);
}

Status GgufWriter::CopyOrError(const std::string& key, const GgufValue& v) {
  std::vector<uint8_t> bytes;
  if (v.type == GgufValueType::kArray) {
    DM_RETURN_IF_ERROR(PutArray(bytes, std::get<GgufArray>(v.data)).WithContext(key));
  } else {
    DM_RETURN_IF_ERROR(PutScalar(bytes, v.type, v).WithContext(key));
  }
  Key(key, v.type);
  kv_.insert(kv_.end(), bytes.begin(), bytes.end());
  return Status::Ok();
}

Status GgufWriter::AddTensorOrError(const std::string& name, std::vector<int64_t> dims,
                                    GgmlType type, Fill fill) {
  std::optional<GgmlTypeTraits> traits = TraitsOf(static_cast<uint32_t>(type));
  if (!traits) return Status::Errorf("tensor '{}': unsupported type {}", name, TypeName(type));
  if (dims.empty() || dims[0] <= 0 || dims[0] % traits->block_elems != 0) {
    return Status::Errorf("tensor '{}': row length {} is not a multiple of {}'s block of {}", name,
                          dims.empty() ? 0 : dims[0], traits->name, traits->block_elems);
  }
  uint64_t rows = 1;
  for (size_t i = 1; i < dims.size(); ++i) rows *= static_cast<uint64_t>(dims[i]);
  const uint64_t bytes = RowBytes(type, dims[0]) * rows;
  const uint64_t offset = (data_bytes_ + kAlignment - 1) / kAlignment * kAlignment;
  data_bytes_ = offset + bytes;
  tensors_.push_back({name, std::move(dims), type, offset, bytes, std::move(fill)});
  return Status::Ok();
}

Status GgufWriter::WriteOrError(const std::string& path) const {
  std::vector<uint8_t> head;
  Put(head, uint32_t{0x46554747});  // "GGUF"
  Put(head, uint32_t{3});
  Put(head, uint64_t{tensors_.size()});
  Put(head, n_kv_);
  head.insert(head.end(), kv_.begin(), kv_.end());
  for (const TensorEntry& t : tensors_) {
    PutString(head, t.name);
    Put(head, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) Put(head, static_cast<uint64_t>(d));
    Put(head, static_cast<uint32_t>(t.type));
    Put(head, t.offset);
  }
  head.resize((head.size() + kAlignment - 1) / kAlignment * kAlignment);

  const std::string tmp = path + ".tmp";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) return Status::Errorf("{}: cannot create", tmp);
  out.write(reinterpret_cast<const char*>(head.data()), static_cast<std::streamsize>(head.size()));
  uint64_t pos = 0;
  std::vector<uint8_t> buf;
  for (const TensorEntry& t : tensors_) {
    buf.assign(t.offset - pos, 0);  // alignment padding
    buf.resize(buf.size() + t.bytes);
    t.fill(buf.data() + (t.offset - pos));
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
    pos = t.offset + t.bytes;
  }
  out.close();
  std::error_code ec;
  if (!out) {
    std::filesystem::remove(tmp, ec);
    return Status::Errorf("{}: write error", tmp);
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::Errorf("{}: cannot rename to {}: {}", tmp, path, ec.message());
  return Status::Ok();
}

}  // namespace dormouse
