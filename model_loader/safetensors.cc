#include "model_loader/safetensors.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "model_loader/file_util.h"
#include "model_loader/json_fields.h"

namespace pkm {
namespace {

using json = nlohmann::json;

// A tensor's byte range within the data section, for the overlap check.
struct Range {
  uint64_t begin;
  uint64_t end;
  const std::string* name;
};

std::string Brief(const json& v) {
  std::string text = v.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return std::string(v.type_name()) + " " + text;
}

// Checks one header entry and fills `view` (name, dtype, shape, nbytes) and `begin`, the offset
// of its data within the data section.
Status ParseEntry(const std::string& path, const std::string& name, const json& entry,
                  uint64_t data_size, TensorView* view, uint64_t* data_begin) {
  const std::string where = path + ": tensor '" + name + "': ";
  if (!entry.is_object()) {
    return DataLossError(where + "expected an object {dtype, shape, data_offsets}, found " +
                         Brief(entry));
  }
  auto dtype_it = entry.find("dtype");
  auto shape_it = entry.find("shape");
  auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || shape_it == entry.end() || offsets_it == entry.end()) {
    return DataLossError(
        where + "entry lacks one of \"dtype\", \"shape\", \"data_offsets\": " + Brief(entry));
  }
  if (!dtype_it->is_string()) return DataLossError(where + "dtype is " + Brief(*dtype_it));
  const std::string dtype_name = dtype_it->get<std::string>();
  std::optional<DType> dtype = DTypeFromName(dtype_name);
  if (!dtype) {
    return UnimplementedError(where + "dtype \"" + dtype_name +
                              "\" is not supported (F32, F16, BF16, I32, I64 are)");
  }

  if (!shape_it->is_array()) return DataLossError(where + "shape is " + Brief(*shape_it));
  uint64_t numel = 1;
  bool overflow = false;
  std::vector<int64_t> shape;
  for (const json& dim : *shape_it) {
    if (!dim.is_number_integer()) {
      return DataLossError(where + "shape " + shape_it->dump() + " has a non-integer dimension");
    }
    if (!dim.is_number_unsigned()) {  // nlohmann stores non-negative integers as unsigned
      return DataLossError(where + "shape " + shape_it->dump() + " has a negative dimension");
    }
    const uint64_t d = dim.get<uint64_t>();
    overflow |= d > uint64_t{std::numeric_limits<int64_t>::max()} ||
                __builtin_mul_overflow(numel, d, &numel);
    shape.push_back(static_cast<int64_t>(d));
  }
  uint64_t nbytes = 0;
  overflow |= __builtin_mul_overflow(numel, DTypeSize(*dtype), &nbytes);
  if (overflow) {
    return DataLossError(where + "shape " + shape_it->dump() + " of " + dtype_name +
                         " overflows 64-bit byte counts");
  }

  const json& offsets = *offsets_it;
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    return DataLossError(where +
                         "data_offsets must be [begin, end] with non-negative integers, "
                         "found " +
                         Brief(offsets));
  }
  const uint64_t begin = offsets[0].get<uint64_t>();
  const uint64_t end = offsets[1].get<uint64_t>();
  const std::string offsets_text =
      "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
  if (begin > end) return DataLossError(where + offsets_text + " has begin > end");
  if (end > data_size) {
    return DataLossError(where + offsets_text + " run past the end of the data section (" +
                         std::to_string(data_size) +
                         " bytes after the header): the file is truncated or the offsets are "
                         "wrong");
  }
  if (end - begin != nbytes) {
    return DataLossError(where + offsets_text + " span " + std::to_string(end - begin) +
                         " bytes, but shape " + ShapeToString(shape) + " of " + dtype_name +
                         " needs " + std::to_string(nbytes));
  }
  view->name = name;
  view->dtype = *dtype;
  view->shape = std::move(shape);
  view->nbytes = static_cast<size_t>(nbytes);
  *data_begin = begin;
  return OkStatus();
}

Status ParseMetadata(const std::string& path, const json& meta,
                     std::map<std::string, std::string>* out) {
  if (!meta.is_object()) {
    return DataLossError(path + ": \"__metadata__\" must be an object, found " + Brief(meta));
  }
  for (const auto& [key, value] : meta.items()) {
    if (!value.is_string()) {
      return DataLossError(path + ": \"__metadata__\" key '" + key +
                           "' must map to a string, "
                           "found " +
                           Brief(value));
    }
    (*out)[key] = value.get<std::string>();
  }
  return OkStatus();
}

}  // namespace

StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  PKM_ASSIGN_OR_RETURN(const int fd, internal_loader::OpenRegularFile(path, ""));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return InternalError(path + ": fstat failed: " + std::strerror(err));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return DataLossError(path + ": file is " + std::to_string(size) +
                         " bytes, shorter than the 8-byte header length that starts a "
                         "safetensors file");
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) return InternalError(path + ": mmap failed: " + std::strerror(err));
  SafetensorsFile file(path, map, size);
  PKM_RETURN_IF_ERROR(file.ParseHeader());
  return file;
}

SafetensorsFile::SafetensorsFile(std::string path, void* map, size_t size)
    : path_(std::move(path)), map_(map), size_(size) {}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      map_(std::exchange(other.map_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      tensors_(std::move(other.tensors_)),
      metadata_(std::move(other.metadata_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    Unmap();
    path_ = std::move(other.path_);
    map_ = std::exchange(other.map_, nullptr);
    size_ = std::exchange(other.size_, 0);
    tensors_ = std::move(other.tensors_);
    metadata_ = std::move(other.metadata_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() { Unmap(); }

void SafetensorsFile::Unmap() {
  if (map_ != nullptr) ::munmap(map_, size_);
  map_ = nullptr;
  size_ = 0;
}

const TensorView* SafetensorsFile::Find(std::string_view name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TensorView& t, std::string_view n) { return t.name < n; });
  return (it != tensors_.end() && it->name == name) ? &*it : nullptr;
}

Status SafetensorsFile::ParseHeader() {
  const auto* base = static_cast<const std::byte*>(map_);
  uint64_t header_len = 0;
  std::memcpy(&header_len, base, sizeof(header_len));  // little-endian u64, like the host
  if (header_len > size_ - 8) {
    return DataLossError(path_ + ": header length " + std::to_string(header_len) +
                         " (the first 8 bytes) runs past the end of the file (" +
                         std::to_string(size_) +
                         " bytes): the file is truncated or not a safetensors file");
  }
  const std::string_view header(reinterpret_cast<const char*>(base + 8), header_len);
  json j;
  if (std::optional<std::string> error = internal_loader::ParseJsonDocument(header, &j)) {
    return DataLossError(path_ + ": malformed header JSON: " + *error);
  }
  if (!j.is_object()) {
    return DataLossError(path_ + ": header must be a JSON object, found " + Brief(j));
  }

  const std::byte* data = base + 8 + header_len;
  const uint64_t data_size = size_ - 8 - header_len;
  for (const auto& [name, entry] : j.items()) {
    if (name == "__metadata__") {
      PKM_RETURN_IF_ERROR(ParseMetadata(path_, entry, &metadata_));
      continue;
    }
    TensorView view;
    uint64_t begin = 0;
    PKM_RETURN_IF_ERROR(ParseEntry(path_, name, entry, data_size, &view, &begin));
    view.data = data + begin;
    tensors_.push_back(std::move(view));
  }

  // Sorted by start, ranges are disjoint when each starts at or after the previous one's end.
  // Empty tensors occupy no bytes and cannot overlap.
  std::vector<Range> ranges;
  for (const TensorView& t : tensors_) {
    const auto begin = static_cast<uint64_t>(t.data - data);
    if (t.nbytes > 0) ranges.push_back({begin, begin + t.nbytes, &t.name});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < ranges.size(); ++i) {
    const Range& a = ranges[i - 1];
    const Range& b = ranges[i];
    if (b.begin < a.end) {
      return DataLossError(path_ + ": tensors '" + *a.name + "' [" + std::to_string(a.begin) +
                           ", " + std::to_string(a.end) + ") and '" + *b.name + "' [" +
                           std::to_string(b.begin) + ", " + std::to_string(b.end) +
                           ") overlap in the data section");
    }
  }
  std::sort(tensors_.begin(), tensors_.end(),
            [](const TensorView& a, const TensorView& b) { return a.name < b.name; });
  return OkStatus();
}

}  // namespace pkm
