// Error values and Result<T> used across every snapvol layer.
//
// Every fallible call returns Status or Result<T>; exceptions never cross a layer. An Error
// carries a code a caller can act on and a message a person can read.
// Thread-safety: value types; safe to copy between threads.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace snapvol {

enum class ErrorCode {
  kNotFound,         // the named thing does not exist; fix the name
  kInvalidArgument,  // the request is malformed; fix the request
  kAlreadyExists,    // the target exists; choose another or force
  kUnauthorized,     // the caller may not do this
  kConflict,         // the current state forbids it; change the state first
  kCorruption,       // stored data failed a check; data may be lost
  kIoError,          // the OS or a remote store failed; retry if retryable
  kNoSpace,          // the device is full; free space and retry
  kQuotaExceeded,    // an account's quota does not allow it; delete something or raise the quota
  kUnsupported,      // a newer format or a feature not built in
  kInternal,         // a bug
};

const char* ErrorCodeName(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string message, bool retryable = false)
      : code_(code), message_(std::move(message)), retryable_(retryable) {}

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  bool retryable() const { return retryable_; }

  // Returns a copy whose message is "context: message".
  Error WithContext(const std::string& context) const {
    return Error(code_, context + ": " + message_, retryable_);
  }
  std::string ToString() const;

 private:
  ErrorCode code_;
  std::string message_;
  bool retryable_;
};

template <typename T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

inline std::unexpected<Error> MakeError(ErrorCode code, std::string message,
                                        bool retryable = false) {
  return std::unexpected<Error>(Error(code, std::move(message), retryable));
}
inline std::unexpected<Error> NotFound(std::string m) {
  return MakeError(ErrorCode::kNotFound, std::move(m));
}
inline std::unexpected<Error> InvalidArgument(std::string m) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(m));
}
inline std::unexpected<Error> Corruption(std::string m) {
  return MakeError(ErrorCode::kCorruption, std::move(m));
}
inline std::unexpected<Error> Conflict(std::string m) {
  return MakeError(ErrorCode::kConflict, std::move(m));
}
inline std::unexpected<Error> Internal(std::string m) {
  return MakeError(ErrorCode::kInternal, std::move(m));
}

// Turns an errno value into an Error: ENOENT → NotFound, ENOSPC/EDQUOT → NoSpace, EACCES →
// Unauthorized, EINTR/EAGAIN/EIO → retryable IoError, else IoError.
Error PosixError(const std::string& context, int err);

inline Status OkStatus() { return {}; }

}  // namespace snapvol

// Evaluates expr (a Status or Result); on error returns the error from the current function.
#define SNAPVOL_CONCAT_INNER(a, b) a##b
#define SNAPVOL_CONCAT(a, b) SNAPVOL_CONCAT_INNER(a, b)
#define RETURN_IF_ERROR(expr) RETURN_IF_ERROR_IMPL(SNAPVOL_CONCAT(_st_, __COUNTER__), expr)
#define RETURN_IF_ERROR_IMPL(tmp, expr)                                \
  do {                                                                 \
    auto tmp = (expr);                                                 \
    if (!tmp) return std::unexpected<::snapvol::Error>(tmp.error());   \
  } while (0)
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(SNAPVOL_CONCAT(_res_, __COUNTER__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)                          \
  auto tmp = (expr);                                                   \
  if (!tmp) return std::unexpected<::snapvol::Error>(tmp.error()); \
  lhs = std::move(*tmp)
