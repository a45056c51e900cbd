// Strict reading of one JSON object of config.json: each getter names its field by its path
// ("memories[1].placement") in errors, and Finish() refuses the fields nobody asked for, so a
// typo is an error rather than a default silently taken. Internal to model_loader/.
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"

namespace pkm::internal_loader {

class JsonFields {
 public:
  // `object` must outlive this; `file` and `prefix` ("", "memories[1].") name it in errors.
  JsonFields(const nlohmann::json& object, std::string file, std::string prefix);

  // Required fields.
  Status Int(std::string_view name, int* out);
  Status Number(std::string_view name, double* out);
  Status Bool(std::string_view name, bool* out);
  Status String(std::string_view name, std::string* out);
  // Optional fields: `*out` keeps its value when the field is absent.
  Status OptionalNumber(std::string_view name, double* out);
  Status OptionalBool(std::string_view name, bool* out);
  Status OptionalString(std::string_view name, std::string* out);
  // A field holding an object or a list, for a nested reader.
  StatusOr<JsonFields> Object(std::string_view name);
  StatusOr<const nlohmann::json*> List(std::string_view name);
  // A string field that must be one of `choices`.
  template <typename E>
  Status Choice(std::string_view name, std::initializer_list<std::pair<std::string_view, E>> choices,
                E* out, bool required = true);

  // Whether the object has the field (counts as read).
  bool Has(std::string_view name) { return Find(name) != nullptr; }
  // kInvalidArgument for the fields never read ("unknown field 'nrom'").
  Status Finish() const;
  // "config.json: field 'memories[1].knn': <what>".
  Status Error(std::string_view name, const std::string& what) const;
  const std::string& file() const { return file_; }
  const std::string& prefix() const { return prefix_; }

 private:
  const nlohmann::json* Find(std::string_view name);
  StatusOr<const nlohmann::json*> Need(std::string_view name);

  const nlohmann::json& object_;
  std::string file_, prefix_;
  std::set<std::string, std::less<>> read_;
};

// kInvalidArgument "FILE: field 'FIELD': WHAT", the shape of every config.json error.
Status FieldError(std::string_view file, std::string_view field, const std::string& what);

// Parses a whole JSON document into `*out`; on failure, what is wrong and where ("syntax error
// while parsing value - invalid literal; last read: 'x' (byte 3)", "number overflow parsing
// '1e999' (byte 12)"). nlohmann reports both only by exception, and a number too large for a
// double is an out_of_range one, not a parse_error.
std::optional<std::string> ParseJsonDocument(std::string_view text, nlohmann::json* out);

// "string \"256\"", "number 256.5": the found side of a type error.
std::string DescribeJson(const nlohmann::json& v);

template <typename E>
Status JsonFields::Choice(std::string_view name,
                          std::initializer_list<std::pair<std::string_view, E>> choices, E* out,
                          bool required) {
  std::string value;
  if (required) {
    PKM_RETURN_IF_ERROR(String(name, &value));
  } else {
    PKM_RETURN_IF_ERROR(OptionalString(name, &value));
    if (value.empty()) return OkStatus();
  }
  std::string allowed;
  for (const auto& [text, e] : choices) {
    if (text == value) {
      *out = e;
      return OkStatus();
    }
    allowed += (allowed.empty() ? "\"" : " | \"") + std::string(text) + "\"";
  }
  return Error(name, "expected " + allowed + ", found \"" + value + "\"");
}

}  // namespace pkm::internal_loader
