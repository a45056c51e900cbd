#include "model_loader/json_fields.h"

#include <climits>

namespace pkm::internal_loader {

using json = nlohmann::json;

std::optional<std::string> ParseJsonDocument(std::string_view text, json* out) {
  auto message = [](const json::exception& e) {
    std::string what = e.what();  // "[json.exception.parse_error.101] parse error at ..."
    if (size_t cut = what.find("] "); cut != std::string::npos) what = what.substr(cut + 2);
    return what;
  };
  try {
    *out = json::parse(text);
    return std::nullopt;
  } catch (const json::parse_error& e) {
    return message(e) + " (byte " + std::to_string(e.byte) + ")";
  } catch (const json::exception& e) {
    return message(e);
  }
}

std::string DescribeJson(const json& v) {
  std::string text = v.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return std::string(v.type_name()) + " " + text;
}

JsonFields::JsonFields(const json& object, std::string file, std::string prefix)
    : object_(object), file_(std::move(file)), prefix_(std::move(prefix)) {}

Status FieldError(std::string_view file, std::string_view field, const std::string& what) {
  // Built by appending: GCC 12 warns falsely (-Wrestrict, PR 105651) on "literal" + string&&.
  std::string message(file);
  message += ": field '";
  message += field;
  message += "': ";
  return InvalidArgumentError(message + what);
}

Status JsonFields::Error(std::string_view name, const std::string& what) const {
  return FieldError(file_, prefix_ + std::string(name), what);
}

const json* JsonFields::Find(std::string_view name) {
  read_.insert(std::string(name));
  auto it = object_.find(std::string(name));
  return it == object_.end() ? nullptr : &*it;
}

StatusOr<const json*> JsonFields::Need(std::string_view name) {
  const json* v = Find(name);
  if (v == nullptr) return Error(name, "missing (every field without a default is required)");
  return v;
}

Status JsonFields::Int(std::string_view name, int* out) {
  PKM_ASSIGN_OR_RETURN(const json* v, Need(name));
  if (!v->is_number_integer()) {
    return Error(name, "expected an integer, found " + DescribeJson(*v));
  }
  const bool fits = v->is_number_unsigned()
                        ? v->get<uint64_t>() <= uint64_t{INT_MAX}
                        : v->get<int64_t>() >= INT_MIN && v->get<int64_t>() <= INT_MAX;
  if (!fits) return Error(name, "value " + v->dump() + " does not fit a 32-bit int");
  *out = v->get<int>();
  return OkStatus();
}

Status JsonFields::Number(std::string_view name, double* out) {
  PKM_ASSIGN_OR_RETURN(const json* v, Need(name));
  if (!v->is_number()) return Error(name, "expected a number, found " + DescribeJson(*v));
  *out = v->get<double>();
  return OkStatus();
}

Status JsonFields::Bool(std::string_view name, bool* out) {
  PKM_ASSIGN_OR_RETURN(const json* v, Need(name));
  if (!v->is_boolean()) return Error(name, "expected true or false, found " + DescribeJson(*v));
  *out = v->get<bool>();
  return OkStatus();
}

Status JsonFields::String(std::string_view name, std::string* out) {
  PKM_ASSIGN_OR_RETURN(const json* v, Need(name));
  if (!v->is_string()) return Error(name, "expected a string, found " + DescribeJson(*v));
  *out = v->get<std::string>();
  return OkStatus();
}

Status JsonFields::OptionalNumber(std::string_view name, double* out) {
  return Find(name) == nullptr ? OkStatus() : Number(name, out);
}

Status JsonFields::OptionalBool(std::string_view name, bool* out) {
  return Find(name) == nullptr ? OkStatus() : Bool(name, out);
}

Status JsonFields::OptionalString(std::string_view name, std::string* out) {
  return Find(name) == nullptr ? OkStatus() : String(name, out);
}

StatusOr<JsonFields> JsonFields::Object(std::string_view name) {
  PKM_ASSIGN_OR_RETURN(const json* v, Need(name));
  if (!v->is_object()) return Error(name, "expected an object, found " + DescribeJson(*v));
  return JsonFields(*v, file_, prefix_ + std::string(name) + ".");
}

StatusOr<const json*> JsonFields::List(std::string_view name) {
  PKM_ASSIGN_OR_RETURN(const json* v, Need(name));
  if (!v->is_array()) return Error(name, "expected a list, found " + DescribeJson(*v));
  return v;
}

Status JsonFields::Finish() const {
  for (const auto& [key, value] : object_.items()) {
    if (read_.count(key) == 0) {
      return InvalidArgumentError(file_ + ": unknown field '" + prefix_ + key +
                                  "'; check the spelling against docs/model-format.md (format 2 "
                                  "allows no other field)");
    }
  }
  return OkStatus();
}

}  // namespace pkm::internal_loader
