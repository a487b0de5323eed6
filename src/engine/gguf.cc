// GGUF layout (little-endian):
//   magic "GGUF", u32 version, u64 tensor_count, u64 kv_count,
//   kv_count x { string key, u32 value_type, value },
//   tensor_count x { string name, u32 n_dims, u64 dims[n_dims], u32 type, u64 offset },
//   padding to `general.alignment` (default 32), tensor data.
// A string is u64 length + bytes; an array is u32 element type + u64 count + elements.
//
// Every read goes through Reader, which checks the remaining bytes first, so a hostile
// count can never make us allocate or read past the file: counts are checked against
// the bytes left (each element needs at least one byte) before anything is reserved.
#include "engine/gguf.h"

#include <cstring>

#include "base/checked_math.h"

namespace dormouse {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian u32
constexpr uint32_t kMaxDims = 4;         // ggml's GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 4;
constexpr uint64_t kMaxStringBytes = uint64_t{1} << 30;

const char* ValueTypeName(GgufValueType t) {
  static const char* const kNames[] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                       "int32",  "float32", "bool",   "string", "array",
                                       "uint64", "int64",   "float64"};
  auto i = static_cast<uint32_t>(t);
  return i < sizeof(kNames) / sizeof(kNames[0]) ? kNames[i] : "invalid";
}

// Bytes of a fixed-size scalar value type; 0 for string/array/invalid.
uint64_t ScalarBytes(GgufValueType t) {
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
    case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
      return 8;
    default:
      return 0;
  }
}

bool IsValidValueType(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kFloat64); }

}  // namespace

// Parses one file; friend of GgufFile so it can fill the private fields.
class GgufParser {
 public:
  // `file_size` > `size` when only a prefix of the file is in `data` (header-only parse):
  // tensor ranges are checked against the whole file and tensors get no data pointer.
  // `describe_only` lists tensors of unknown types instead of refusing the file.
  GgufParser(GgufFile& out, const uint8_t* data, uint64_t size, uint64_t file_size,
             bool describe_only = false)
      : out_(out), data_(data), size_(size), file_size_(file_size), describe_only_(describe_only) {}

  Status Parse() {
    uint32_t magic = 0;
    DM_RETURN_IF_ERROR(Read(&magic, "magic"));
    if (magic != kMagic) return Status::Error("not a GGUF file (bad magic)");
    DM_RETURN_IF_ERROR(Read(&out_.version_, "version"));
    if (out_.version_ != 2 && out_.version_ != 3) {
      return Status::Errorf("unsupported GGUF version {} (supported: 2, 3)", out_.version_);
    }
    uint64_t n_tensors = 0, n_kv = 0;
    DM_RETURN_IF_ERROR(Read(&n_tensors, "tensor count"));
    DM_RETURN_IF_ERROR(Read(&n_kv, "metadata count"));
    // Each key-value pair needs at least 12 bytes, each tensor info at least 24.
    if (n_kv > Remaining() / 12) {
      return Status::Errorf("metadata count {} is impossible for a {}-byte file", n_kv, size_);
    }
    if (n_tensors > Remaining() / 24) {
      return Status::Errorf("tensor count {} is impossible for a {}-byte file", n_tensors, size_);
    }
    for (uint64_t i = 0; i < n_kv; ++i) DM_RETURN_IF_ERROR(ParseKeyValue(i));
    DM_RETURN_IF_ERROR(ReadAlignment());
    out_.tensors_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) DM_RETURN_IF_ERROR(ParseTensorInfo(i));
    return BindTensorData();
  }

 private:
  uint64_t Remaining() const { return size_ - pos_; }

  Status Truncated(const char* what) const {
    return Status::Errorf("file is truncated: {} at offset {} runs past the end ({} bytes)", what,
                          pos_, size_);
  }

  template <typename T>
  Status Read(T* v, const char* what) {
    if (Remaining() < sizeof(T)) return Truncated(what);
    std::memcpy(v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }

  Status ReadString(std::string* s, const char* what) {
    uint64_t len = 0;
    DM_RETURN_IF_ERROR(Read(&len, what));
    if (len > kMaxStringBytes) return Status::Errorf("{} has absurd length {}", what, len);
    if (len > Remaining()) return Truncated(what);
    s->assign(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return Status::Ok();
  }

  Status ParseKeyValue(uint64_t index) {
    std::string key;
    DM_RETURN_IF_ERROR(ReadString(&key, "metadata key"));
    if (key.empty()) return Status::Errorf("metadata entry {} has an empty key", index);
    uint32_t raw_type = 0;
    DM_RETURN_IF_ERROR(Read(&raw_type, "metadata value type"));
    if (!IsValidValueType(raw_type)) {
      return Status::Errorf("metadata '{}' has invalid value type {}", key, raw_type);
    }
    GgufValue value;
    Status s = ParseValue(static_cast<GgufValueType>(raw_type), &value, 0);
    if (!s.ok()) return s.WithContext("metadata '" + key + "'");
    if (out_.metadata_.count(key) != 0) return Status::Errorf("duplicate metadata key '{}'", key);
    out_.metadata_.emplace(std::move(key), std::move(value));
    return Status::Ok();
  }

  Status ParseValue(GgufValueType type, GgufValue* v, int depth) {
    v->type = type;
    switch (type) {
      case GgufValueType::kString: {
        std::string s;
        DM_RETURN_IF_ERROR(ReadString(&s, "string value"));
        v->data = std::move(s);
        return Status::Ok();
      }
      case GgufValueType::kArray: {
        GgufArray a;
        DM_RETURN_IF_ERROR(ParseArray(&a, depth));
        v->data = std::move(a);
        return Status::Ok();
      }
      case GgufValueType::kFloat32:
      case GgufValueType::kFloat64: {
        double d = 0;
        DM_RETURN_IF_ERROR(ReadFloat(type, &d));
        v->data = d;
        return Status::Ok();
      }
      default: {
        int64_t i = 0;
        DM_RETURN_IF_ERROR(ReadInteger(type, &i));
        v->data = i;
        return Status::Ok();
      }
    }
  }

  Status ReadInteger(GgufValueType type, int64_t* out) {
    switch (type) {
      case GgufValueType::kUint8:
        return ReadAs<uint8_t>(out);
      case GgufValueType::kInt8:
        return ReadAs<int8_t>(out);
      case GgufValueType::kBool: {
        uint8_t b = 0;
        DM_RETURN_IF_ERROR(Read(&b, "bool value"));
        if (b > 1) return Status::Errorf("bool value {} is neither 0 nor 1", b);
        *out = b;
        return Status::Ok();
      }
      case GgufValueType::kUint16:
        return ReadAs<uint16_t>(out);
      case GgufValueType::kInt16:
        return ReadAs<int16_t>(out);
      case GgufValueType::kUint32:
        return ReadAs<uint32_t>(out);
      case GgufValueType::kInt32:
        return ReadAs<int32_t>(out);
      case GgufValueType::kUint64:
        return ReadAs<uint64_t>(out);  // bit pattern
      case GgufValueType::kInt64:
        return ReadAs<int64_t>(out);
      default:
        return Status::Errorf("{} is not an integer type", ValueTypeName(type));
    }
  }

  template <typename T>
  Status ReadAs(int64_t* out) {
    T v{};
    DM_RETURN_IF_ERROR(Read(&v, "integer value"));
    *out = static_cast<int64_t>(v);
    return Status::Ok();
  }

  Status ReadFloat(GgufValueType type, double* out) {
    if (type == GgufValueType::kFloat32) {
      float f = 0;
      DM_RETURN_IF_ERROR(Read(&f, "float32 value"));
      *out = f;
    } else {
      DM_RETURN_IF_ERROR(Read(out, "float64 value"));
    }
    return Status::Ok();
  }

  Status ParseArray(GgufArray* a, int depth) {
    if (depth >= kMaxArrayDepth) return Status::Error("arrays nested too deeply");
    uint32_t raw_type = 0;
    uint64_t count = 0;
    DM_RETURN_IF_ERROR(Read(&raw_type, "array element type"));
    DM_RETURN_IF_ERROR(Read(&count, "array length"));
    if (!IsValidValueType(raw_type)) {
      return Status::Errorf("array has invalid element type {}", raw_type);
    }
    a->elem_type = static_cast<GgufValueType>(raw_type);
    // Strings need 8 bytes each (their length), nested arrays 12, scalars their size.
    uint64_t min_bytes = ScalarBytes(a->elem_type);
    if (a->elem_type == GgufValueType::kString) min_bytes = 8;
    if (a->elem_type == GgufValueType::kArray) min_bytes = 12;
    if (count > Remaining() / min_bytes) {
      return Status::Errorf("array of {} {} elements runs past the end of the file", count,
                            ValueTypeName(a->elem_type));
    }
    return FillArray(a, count, depth);
  }

  Status FillArray(GgufArray* a, uint64_t count, int depth) {
    const GgufValueType t = a->elem_type;
    if (t == GgufValueType::kString) {
      a->strings.resize(count);
      for (std::string& s : a->strings) DM_RETURN_IF_ERROR(ReadString(&s, "array string"));
    } else if (t == GgufValueType::kArray) {
      a->arrays.resize(count);
      for (GgufValue& v : a->arrays) DM_RETURN_IF_ERROR(ParseValue(t, &v, depth + 1));
    } else if (t == GgufValueType::kFloat32 || t == GgufValueType::kFloat64) {
      a->floats.resize(count);
      for (double& d : a->floats) DM_RETURN_IF_ERROR(ReadFloat(t, &d));
    } else {
      a->ints.resize(count);
      for (int64_t& i : a->ints) DM_RETURN_IF_ERROR(ReadInteger(t, &i));
    }
    return Status::Ok();
  }

  Status ReadAlignment() {
    const GgufValue* v = out_.Find("general.alignment");
    if (v == nullptr) return Status::Ok();
    const int64_t* a = std::get_if<int64_t>(&v->data);
    if (a == nullptr || v->type == GgufValueType::kBool) {
      return Status::Error("general.alignment is not an integer");
    }
    if (*a <= 0 || *a > (1 << 24) || (*a & (*a - 1)) != 0) {
      return Status::Errorf("general.alignment {} is not a power of two in [1, 2^24]", *a);
    }
    out_.alignment_ = static_cast<uint64_t>(*a);
    return Status::Ok();
  }

  Status ParseTensorInfo(uint64_t index) {
    GgufTensorInfo t;
    DM_RETURN_IF_ERROR(ReadString(&t.name, "tensor name"));
    if (t.name.empty()) return Status::Errorf("tensor {} has an empty name", index);
    Status s = ParseTensorShape(&t);
    if (!s.ok()) return s.WithContext("tensor '" + t.name + "'");
    if (out_.tensor_index_.count(t.name) != 0) {
      return Status::Errorf("duplicate tensor name '{}'", t.name);
    }
    out_.tensor_index_.emplace(t.name, out_.tensors_.size());
    out_.tensors_.push_back(std::move(t));
    return Status::Ok();
  }

  Status ParseTensorShape(GgufTensorInfo* t) {
    uint32_t n_dims = 0;
    DM_RETURN_IF_ERROR(Read(&n_dims, "tensor dimension count"));
    if (n_dims == 0 || n_dims > kMaxDims) {
      return Status::Errorf("has {} dimensions (supported: 1 to {})", n_dims, kMaxDims);
    }
    uint64_t elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = 0;
      DM_RETURN_IF_ERROR(Read(&dim, "tensor dimension"));
      auto product = CheckedMul(elements, dim);
      if (dim == 0 || dim > (uint64_t{1} << 40) || !product || *product > (uint64_t{1} << 48)) {
        return Status::Errorf("has an absurd dimension {}", dim);
      }
      elements = *product;
      t->dims.push_back(static_cast<int64_t>(dim));
    }
    uint32_t raw_type = 0;
    DM_RETURN_IF_ERROR(Read(&raw_type, "tensor type"));
    std::optional<GgmlTypeTraits> traits = TraitsOf(raw_type);
    t->raw_type = raw_type;
    if (!traits && describe_only_) {  // listed by name, never bound to data
      t->known_type = false;
      t->n_elements = elements;
      return Read(&t->offset, "tensor offset");
    }
    if (!traits) {
      return Status::Errorf("has unsupported type {} (supported: {})", TypeName(raw_type),
                            SupportedTypeList());
    }
    t->type = static_cast<GgmlType>(raw_type);
    if (static_cast<uint64_t>(t->dims[0]) % traits->block_elems != 0) {
      return Status::Errorf("row length {} is not a multiple of {}'s block size {}", t->dims[0],
                            traits->name, traits->block_elems);
    }
    DM_RETURN_IF_ERROR(Read(&t->offset, "tensor offset"));
    if (t->offset % out_.alignment_ != 0) {
      return Status::Errorf("data offset {} is not aligned to {}", t->offset, out_.alignment_);
    }
    t->n_elements = elements;
    t->n_bytes = elements / traits->block_elems * traits->block_bytes;  // < 2^48 * 210
    return Status::Ok();
  }

  Status BindTensorData() {
    auto data_offset = CheckedAlignUp(pos_, out_.alignment_);
    if (!data_offset) return Status::Error("tensor data offset overflows");
    out_.data_offset_ = *data_offset;
    if (out_.tensors_.empty()) return Status::Ok();  // vocabulary-only file
    if (out_.data_offset_ > file_size_) return Truncated("tensor data section");
    const uint64_t data_size = file_size_ - out_.data_offset_;
    const bool header_only = file_size_ != size_;
    for (GgufTensorInfo& t : out_.tensors_) {
      if (!t.known_type) continue;
      if (!RangeWithin(t.offset, t.n_bytes, data_size)) {
        return Status::Errorf(
            "tensor '{}' data [{}, +{}) is not within the file's tensor data ({} bytes; the "
            "file may be truncated)",
            t.name, t.offset, t.n_bytes, data_size);
      }
      t.data = header_only ? nullptr : data_ + out_.data_offset_ + t.offset;
    }
    return Status::Ok();
  }

  GgufFile& out_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t file_size_;
  uint64_t pos_ = 0;
  bool describe_only_ = false;
};

uint64_t GgufArray::size() const {
  switch (elem_type) {
    case GgufValueType::kString:
      return strings.size();
    case GgufValueType::kArray:
      return arrays.size();
    case GgufValueType::kFloat32:
    case GgufValueType::kFloat64:
      return floats.size();
    default:
      return ints.size();
  }
}

StatusOr<GgufFile> GgufFile::OpenOrError(const std::string& path) {
  DM_ASSIGN_OR_RETURN(MappedFile file, MappedFile::OpenOrError(path));
  return ParseOrError(std::move(file));
}

StatusOr<GgufFile> GgufFile::DescribeOrError(const std::string& path) {
  DM_ASSIGN_OR_RETURN(MappedFile file, MappedFile::OpenOrError(path));
  GgufFile g;
  g.path_ = file.path();
  g.base_ = file.data();
  g.size_ = file.size();
  GgufParser parser(g, g.base_, g.size_, g.size_, /*describe_only=*/true);
  Status s = parser.Parse();
  if (!s.ok()) return s.WithContext(path);
  g.file_ = std::move(file);
  return g;
}

StatusOr<GgufFile> GgufFile::ParseOrError(MappedFile file) {
  const uint8_t* data = file.data();
  uint64_t size = file.size();
  std::string name = file.path();
  DM_ASSIGN_OR_RETURN(GgufFile g, ParseBytesOrError(data, size, name));
  g.file_ = std::move(file);  // the mapping moves; its address does not
  return g;
}

StatusOr<GgufFile> GgufFile::ParseBytesOrError(const uint8_t* data, uint64_t size,
                                               const std::string& name) {
  GgufFile g;
  g.path_ = name;
  g.base_ = data;
  g.size_ = size;
  GgufParser parser(g, data, size, size);
  Status s = parser.Parse();
  if (!s.ok()) return s.WithContext(name);
  return g;
}

StatusOr<GgufFile> GgufFile::ParseHeaderOrError(const uint8_t* data, uint64_t available,
                                                uint64_t file_size, const std::string& name) {
  if (available > file_size) {
    return Status::Errorf("{}: {} header bytes for a {}-byte file", name, available, file_size);
  }
  GgufFile g;
  g.path_ = name;
  g.size_ = file_size;
  GgufParser parser(g, data, available, file_size);
  Status s = parser.Parse();
  if (!s.ok()) return s.WithContext(name);
  g.base_ = nullptr;  // `data` holds only the header; nothing may point into it
  return g;
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

StatusOr<std::optional<int64_t>> GgufFile::GetInt(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return std::optional<int64_t>();
  if (const int64_t* i = std::get_if<int64_t>(&v->data)) {
    if (v->type == GgufValueType::kUint64 && *i < 0) {
      return Status::Errorf("metadata '{}' = {} does not fit in int64", key,
                            static_cast<uint64_t>(*i));
    }
    return std::optional<int64_t>(*i);
  }
  return Status::Errorf("metadata '{}' is a {}, expected an integer", key, ValueTypeName(v->type));
}

StatusOr<std::optional<double>> GgufFile::GetFloat(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return std::optional<double>();
  if (const double* d = std::get_if<double>(&v->data)) return std::optional<double>(*d);
  if (const int64_t* i = std::get_if<int64_t>(&v->data)) {
    if (v->type != GgufValueType::kBool) return std::optional<double>(static_cast<double>(*i));
  }
  return Status::Errorf("metadata '{}' is a {}, expected a number", key, ValueTypeName(v->type));
}

StatusOr<std::optional<bool>> GgufFile::GetBool(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return std::optional<bool>();
  if (const int64_t* i = std::get_if<int64_t>(&v->data)) {
    if (v->type == GgufValueType::kBool || *i == 0 || *i == 1) {
      return std::optional<bool>(*i != 0);
    }
  }
  return Status::Errorf("metadata '{}' is a {}, expected a bool", key, ValueTypeName(v->type));
}

StatusOr<std::optional<std::string>> GgufFile::GetString(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return std::optional<std::string>();
  if (const std::string* s = std::get_if<std::string>(&v->data)) {
    return std::optional<std::string>(*s);
  }
  return Status::Errorf("metadata '{}' is a {}, expected a string", key, ValueTypeName(v->type));
}

const GgufArray* GgufFile::GetArray(std::string_view key) const {
  const GgufValue* v = Find(key);
  return v == nullptr ? nullptr : std::get_if<GgufArray>(&v->data);
}

const GgufTensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace dormouse
