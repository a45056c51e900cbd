// pkm::Status -> grpc::Status, code for code (pkm's codes are numbered like gRPC's).
#pragma once

#include <grpcpp/support/status.h>

#include "common/status.h"

namespace pkm {

inline grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(status.code())),
                      status.message());
}

}  // namespace pkm
