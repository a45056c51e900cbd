// SafetensorsFile: a read-only, memory-mapped safetensors file (docs/model-format.md#safetensors)
// whose header has been checked so that no TensorView can reach outside the file.
//
// Open() refuses, naming the file and the tensor: a file shorter than the 8-byte header length,
// a header length past the end of the file, malformed header JSON, an entry that is not
// {dtype, shape, data_offsets}, a negative or overflowing shape, data_offsets past the end of
// the data (a truncated file), end - begin != numel · dtype size, and overlapping ranges.
// Gaps between tensors and any order are accepted. Codes: kNotFound (no file),
// kUnimplemented (a dtype other than F32, F16, BF16, I32, I64), kDataLoss (everything else
// about the bytes), kFailedPrecondition / kInternal (unreadable file, mmap failure).
//
// The file must not be truncated while it is open: the mapping would fault (SIGBUS) on access.
// Writers replace model files by rename, which leaves an open mapping intact.
//
// Thread-safety: immutable after Open(); const methods may be called concurrently.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "model_loader/dtype.h"

namespace pkm {

class SafetensorsFile {
 public:
  static StatusOr<SafetensorsFile> Open(const std::string& path);

  // Move-only: the views point into the mapping, which moves with the object (the mapped
  // addresses do not change, so views taken before a move stay valid).
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  // The tensor called `name`, or null.
  const TensorView* Find(std::string_view name) const;
  // Every tensor, sorted by name.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // The header's "__metadata__" (string -> string); empty when absent.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }
  size_t file_size() const { return size_; }

 private:
  SafetensorsFile(std::string path, void* map, size_t size);
  Status ParseHeader();
  void Unmap();

  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace pkm
