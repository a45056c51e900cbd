// Requests and responses on the wire, for the service's raw (ByteBuffer) methods.
//
// Why raw: with generated message types, gRPC parses the request before the service sees it,
// and when parsing fails (a string field that is not valid UTF-8, which proto3 forbids, or
// bytes that are not a message at all) the callback API answers UNIMPLEMENTED with an empty
// message and libprotobuf logs on both sides. Decoding here gives the caller INVALID_ARGUMENT
// naming the field and the byte offset, and the service counts it like any refused request.
#pragma once

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>
#include <google/protobuf/message.h>

#include <string>

namespace pkm {

// Checks every string field of `bytes` (as `out`'s type, nested messages included) for UTF-8,
// then parses it into `out`. INVALID_ARGUMENT: "text is not valid UTF-8: byte 17 (0xff) ...",
// "stop[2] ...", or "the request is not a valid pkmserve.v1.ScoreRequest message".
grpc::Status DecodeRequest(const grpc::ByteBuffer& buffer, google::protobuf::Message* out);

// Same, from bytes (for tests).
grpc::Status DecodeRequestBytes(const std::string& bytes, google::protobuf::Message* out);

// Serializes `message` into `buffer` (replacing what it held).
void EncodeResponse(const google::protobuf::Message& message, grpc::ByteBuffer* buffer);

}  // namespace pkm
