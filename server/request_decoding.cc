#include "server/request_decoding.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <map>
#include <vector>

#include "common/utf8.h"

namespace pkm {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::io::CodedInputStream;
using google::protobuf::internal::WireFormatLite;

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

// Walks one message's fields. Returns false when the bytes are not a message; sets *error for a
// string field that is not UTF-8 (the first one found). `prefix` names the enclosing field.
bool CheckStrings(const std::string& bytes, const Descriptor* type, const std::string& prefix,
                  std::string* error, int depth) {
  if (depth > 32) return false;  // our messages nest two deep
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                      static_cast<int>(bytes.size()));
  std::map<int, int> seen;  // field number -> occurrences, for repeated fields' indexes
  while (true) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) return in.CurrentPosition() == static_cast<int>(bytes.size());
    const int number = WireFormatLite::GetTagFieldNumber(tag);
    const FieldDescriptor* field = type->FindFieldByNumber(number);
    const bool nested = field != nullptr && (field->type() == FieldDescriptor::TYPE_STRING ||
                                            field->type() == FieldDescriptor::TYPE_MESSAGE);
    if (!nested || WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      if (!WireFormatLite::SkipField(&in, tag)) return false;
      continue;
    }
    std::string value;
    uint32_t length = 0;
    if (!in.ReadVarint32(&length) || !in.ReadString(&value, static_cast<int>(length))) return false;
    std::string name = prefix;
    name += field->name();
    if (field->is_repeated()) {
      name += '[';
      name += std::to_string(seen[number]++);
      name += ']';
    }
    if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
      if (!CheckStrings(value, field->message_type(), name + '.', error, depth + 1)) return false;
    } else if (error->empty()) {
      if (std::optional<std::string> bad = DescribeInvalidUtf8(value, name)) {
        *error = *bad + " (strings must be UTF-8; send raw bytes as token ids)";
      }
    }
  }
}

}  // namespace

grpc::Status DecodeRequestBytes(const std::string& bytes, google::protobuf::Message* out) {
  const std::string type = out->GetDescriptor()->full_name();
  std::string error;
  if (!CheckStrings(bytes, out->GetDescriptor(), "", &error, 0)) {
    return Invalid("the request is not a valid " + type + " message");
  }
  if (!error.empty()) return Invalid(error);
  if (!out->ParseFromString(bytes)) return Invalid("the request is not a valid " + type + " message");
  return grpc::Status::OK;
}

grpc::Status DecodeRequest(const grpc::ByteBuffer& buffer, google::protobuf::Message* out) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return Invalid("the request could not be read");
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return DecodeRequestBytes(bytes, out);
}

void EncodeResponse(const google::protobuf::Message& message, grpc::ByteBuffer* buffer) {
  const std::string bytes = message.SerializeAsString();
  grpc::Slice slice(bytes);
  *buffer = grpc::ByteBuffer(&slice, 1);
}

}  // namespace pkm
