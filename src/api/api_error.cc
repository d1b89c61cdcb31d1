#include "api/api_error.h"

namespace snapvol::api {

int HttpStatusForCode(std::string_view code) {
  if (code == ec2::kAuthFailure) return 401;
  if (code == ec2::kUnauthorizedOperation || code == "MissingAuthenticationToken") return 403;
  if (code == ec2::kDryRunOperation) return 412;
  if (code == ec2::kRequestEntityTooLarge) return 413;
  if (code == ec2::kInternalError || code == "InternalFailure" ||
      code.starts_with("Insufficient")) {
    return 500;
  }
  if (code == ec2::kUnavailable || code == "ServiceUnavailable" ||
      code == ec2::kRequestLimitExceeded) {
    return 503;
  }
  return 400;
}

ApiError MakeApiError(std::string_view code, std::string message) {
  return ApiError{std::string(code), std::move(message), HttpStatusForCode(code)};
}

ApiError MissingParameter(std::string_view name) {
  return MakeApiError(ec2::kMissingParameter,
                      "The request must contain the parameter " + std::string(name));
}

std::string QuoteForMessage(std::string_view value) {
  constexpr size_t kMax = 64;
  if (value.size() <= kMax) return std::string(value);
  // Cut on a UTF-8 boundary so the message stays valid UTF-8.
  size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80) --cut;
  return std::string(value.substr(0, cut)) + "...";
}

ApiError InvalidParameterValue(std::string_view name, std::string_view value,
                               std::string_view expectation) {
  std::string msg =
      "Value (" + QuoteForMessage(value) + ") for parameter " + std::string(name) + " is invalid.";
  if (!expectation.empty()) msg += " " + std::string(expectation);
  return MakeApiError(ec2::kInvalidParameterValue, std::move(msg));
}

ApiError FromError(const Error& error) {
  switch (error.code()) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kNotFound:
      return MakeApiError(ec2::kInvalidParameterValue, error.message());
    case ErrorCode::kUnauthorized:
      return MakeApiError(ec2::kUnauthorizedOperation,
                          "You are not authorized to perform this operation.");
    case ErrorCode::kConflict:
    case ErrorCode::kAlreadyExists:
      return MakeApiError(ec2::kIncorrectState, error.message());
    case ErrorCode::kUnsupported:
      return MakeApiError(ec2::kUnsupportedOperation, error.message());
    case ErrorCode::kNoSpace:
      return MakeApiError(ec2::kInsufficientCapacity,
                          "There is not enough storage capacity to fulfill the request.");
    case ErrorCode::kQuotaExceeded:
      return MakeApiError(ec2::kResourceLimitExceeded, error.message());
    case ErrorCode::kIoError:
      if (error.retryable()) {
        return MakeApiError(ec2::kUnavailable,
                            "The service is temporarily unavailable. Try again later.");
      }
      break;
    case ErrorCode::kCorruption:
    case ErrorCode::kInternal:
      break;
  }
  return MakeApiError(ec2::kInternalError, "An internal error has occurred");
}

ApiError FromErrorWithLimit(const Error& error, std::string_view limit_code) {
  if (error.code() == ErrorCode::kQuotaExceeded) return MakeApiError(limit_code, error.message());
  return FromError(error);
}

}  // namespace snapvol::api
