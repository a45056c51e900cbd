// pkm::Status and pkm::StatusOr<T>: the error type at every module boundary of pkmserve.
//
// Why our own and not absl::Status: the engine, the model loader and the kernels must build on
// a GPU machine that has only a compiler, CMake and the CUDA toolkit, without Abseil. The
// server (which has Abseil and gRPC) converts a pkm::Status to a grpc::Status code for code:
// StatusCode's names and numeric values are those of absl::StatusCode and grpc::StatusCode, so
// the conversion is a static_cast.
//
// Choosing a code (after absl/status/status.h):
//   kInvalidArgument    the input is wrong whatever the state of the system (a bad config value,
//                       a tensor of the wrong shape, an unknown field).
//   kNotFound           a file or entity that must exist does not.
//   kFailedPrecondition the system is not in the state the operation needs (fix state, retry).
//   kOutOfRange         a valid kind of value past a current limit (e.g. a prompt too long).
//   kResourceExhausted  memory, KV blocks or a quota ran out.
//   kUnimplemented      well-formed but not supported by this build (an unknown format_version).
//   kDataLoss           a file's bytes are corrupt or truncated.
//   kUnauthenticated    a call without the server's bearer token.
//   kInternal           a broken invariant of ours.
//   kUnavailable, kDeadlineExceeded, kCancelled: as in gRPC.
//
// Thread-safety: both are plain values. Const methods may be called concurrently; a mutation
// needs exclusive access, like any std:: value type.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace pkm {

// A subset of absl::StatusCode, with the same values (gaps are the codes we do not use yet).
enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// "OK", "INVALID_ARGUMENT", ... as absl spells them; "UNKNOWN_CODE(n)" is never returned for a
// named enumerator.
std::string StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  // OK.
  Status() = default;
  // An OK code drops the message, so that every OK status compares equal.
  Status(StatusCode code, std::string message);

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "OK", or "<CODE_NAME>: <message>".
  std::string ToString() const;

  friend bool operator==(const Status&, const Status&) = default;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

std::ostream& operator<<(std::ostream& os, const Status& status);

inline Status OkStatus() { return Status(); }
inline Status CancelledError(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status InvalidArgumentError(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status DeadlineExceededError(std::string m) {
  return {StatusCode::kDeadlineExceeded, std::move(m)};
}
inline Status NotFoundError(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status ResourceExhaustedError(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status FailedPreconditionError(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status OutOfRangeError(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status UnimplementedError(std::string m) {
  return {StatusCode::kUnimplemented, std::move(m)};
}
inline Status InternalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status UnavailableError(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status DataLossError(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }

namespace internal_status {
// Aborts the process: value() was called on a StatusOr holding an error (a programming error,
// like dereferencing an empty optional, but loud).
[[noreturn]] void DieOnValueOfError(const Status& status);
// The error a StatusOr holds when constructed from an OK Status (absl does the same).
Status OkStatusInStatusOr();
}  // namespace internal_status

// Either a T or a non-OK Status. Construct implicitly from either, so functions can
// `return value;` and `return SomeError(...);`.
template <typename T>
class [[nodiscard]] StatusOr {
  static_assert(!std::is_reference_v<T>, "StatusOr<T&> is not supported");
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Status>, "StatusOr<Status> is ambiguous");

  template <typename U>
  static constexpr bool kConvertible =
      std::is_constructible_v<T, U&&> && !std::is_same_v<std::remove_cvref_t<U>, T> &&
      !std::is_same_v<std::remove_cvref_t<U>, Status> &&
      !std::is_same_v<std::remove_cvref_t<U>, StatusOr>;

 public:
  // An OK `status` is a bug of the caller; it becomes an kInternal error.
  StatusOr(const Status& status) : status_(status) { CheckNotOk(); }        // NOLINT: implicit
  StatusOr(Status&& status) : status_(std::move(status)) { CheckNotOk(); }  // NOLINT
  StatusOr(const T& value) : value_(value) {}                               // NOLINT
  StatusOr(T&& value) : value_(std::move(value)) {}                         // NOLINT
  // From anything T can be built from, e.g. unique_ptr<Derived> for StatusOr<unique_ptr<Base>>.
  template <typename U>
  requires kConvertible<U>
  explicit(!std::is_convertible_v<U&&, T>) StatusOr(U&& value)  // NOLINT
      : value_(std::in_place, std::forward<U>(value)) {}

  bool ok() const { return value_.has_value(); }
  const Status& status() const& { return status_; }
  Status status() && { return std::move(status_); }

  // Abort with the status when !ok().
  const T& value() const& {
    CheckHasValue();
    return *value_;
  }
  T& value() & {
    CheckHasValue();
    return *value_;
  }
  T&& value() && {
    CheckHasValue();
    return std::move(*value_);
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

 private:
  void CheckNotOk() {
    if (status_.ok()) status_ = internal_status::OkStatusInStatusOr();
  }
  void CheckHasValue() const {
    if (!value_.has_value()) internal_status::DieOnValueOfError(status_);
  }

  Status status_;  // OK exactly when value_ holds a value.
  std::optional<T> value_;
};

}  // namespace pkm

#define PKM_STATUS_CONCAT_INNER_(a, b) a##b
#define PKM_STATUS_CONCAT_(a, b) PKM_STATUS_CONCAT_INNER_(a, b)

// Evaluates an expression yielding a pkm::Status; returns it from the enclosing function when it
// is not OK. The enclosing function returns Status or StatusOr<U>.
#define PKM_RETURN_IF_ERROR(...)                                               \
  do {                                                                         \
    ::pkm::Status pkm_return_if_error_status_ = (__VA_ARGS__);                 \
    if (!pkm_return_if_error_status_.ok()) return pkm_return_if_error_status_; \
  } while (false)

// PKM_ASSIGN_OR_RETURN(lhs, expr): evaluates `expr` (a StatusOr<T>); on error returns its status
// from the enclosing function, else moves the value into `lhs`, which may declare a variable
// (`auto x`, `std::unique_ptr<Foo> p`) or name an existing one. It expands to several
// statements: do not use it as the body of an unbraced if/else. `lhs` must not contain an
// unparenthesized comma; `expr` may.
#define PKM_ASSIGN_OR_RETURN(lhs, ...) \
  PKM_ASSIGN_OR_RETURN_IMPL_(PKM_STATUS_CONCAT_(pkm_statusor_, __LINE__), lhs, __VA_ARGS__)
#define PKM_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, ...)     \
  auto statusor = (__VA_ARGS__);                           \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
