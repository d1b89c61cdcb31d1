#include "core/status.h"

#include <cerrno>
#include <cstring>

namespace snapvol {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kNotFound: return "NotFound";
    case ErrorCode::kInvalidArgument: return "InvalidArgument";
    case ErrorCode::kAlreadyExists: return "AlreadyExists";
    case ErrorCode::kUnauthorized: return "Unauthorized";
    case ErrorCode::kConflict: return "Conflict";
    case ErrorCode::kCorruption: return "Corruption";
    case ErrorCode::kIoError: return "IoError";
    case ErrorCode::kNoSpace: return "NoSpace";
    case ErrorCode::kQuotaExceeded: return "QuotaExceeded";
    case ErrorCode::kUnsupported: return "Unsupported";
    case ErrorCode::kInternal: return "Internal";
  }
  return "Unknown";
}

std::string Error::ToString() const {
  return std::string(ErrorCodeName(code_)) + ": " + message_;
}

Error PosixError(const std::string& context, int err) {
  std::string msg = context + ": " + std::strerror(err);
  switch (err) {
    case ENOENT: return Error(ErrorCode::kNotFound, msg);
    case ENOSPC:
    case EDQUOT: return Error(ErrorCode::kNoSpace, msg);
    case EACCES:
    case EPERM: return Error(ErrorCode::kUnauthorized, msg);
    case EEXIST: return Error(ErrorCode::kAlreadyExists, msg);
    case EINTR:
    case EAGAIN:
    case EIO: return Error(ErrorCode::kIoError, msg, /*retryable=*/true);
    default: return Error(ErrorCode::kIoError, msg);
  }
}

}  // namespace snapvol
