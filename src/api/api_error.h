// EC2 Query API errors: the error code string a client sees, its message and HTTP status.
//
// The api layer reports failures as ApiError (not snapvol::Error) because an EC2 client acts
// on the exact code string ("MissingParameter", "InvalidSnapshot.NotFound", ...), which the
// core ErrorCode cannot carry. FromError() maps a lower layer's Error to a generic EC2 error;
// handlers that know better (e.g. a missing snapshot → InvalidSnapshot.NotFound) build their
// own ApiError instead.
// Thread-safety: value types and pure functions; safe from any thread.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>

#include "core/status.h"

namespace snapvol::api {

// EC2 error codes used by snapvol. The HTTP status of each is given by HttpStatusForCode().
namespace ec2 {
// 400: the request is wrong; fix it.
inline constexpr std::string_view kMissingParameter = "MissingParameter";
inline constexpr std::string_view kInvalidParameterValue = "InvalidParameterValue";
inline constexpr std::string_view kInvalidParameterCombination = "InvalidParameterCombination";
inline constexpr std::string_view kInvalidParameter = "InvalidParameter";
inline constexpr std::string_view kUnknownParameter = "UnknownParameter";
inline constexpr std::string_view kMalformedQueryString = "MalformedQueryString";
inline constexpr std::string_view kInvalidAction = "InvalidAction";
inline constexpr std::string_view kMissingAction = "MissingAction";
inline constexpr std::string_view kInvalidPaginationToken = "InvalidPaginationToken";
inline constexpr std::string_view kIncorrectState = "IncorrectState";
inline constexpr std::string_view kInvalidSnapshotNotFound = "InvalidSnapshot.NotFound";
inline constexpr std::string_view kInvalidVolumeNotFound = "InvalidVolume.NotFound";
inline constexpr std::string_view kInvalidInstanceIdNotFound = "InvalidInstanceID.NotFound";
inline constexpr std::string_view kUnsupportedOperation = "UnsupportedOperation";
// An account's quota (snapvol account set-quota) does not allow the new volume or snapshot.
inline constexpr std::string_view kVolumeLimitExceeded = "VolumeLimitExceeded";
inline constexpr std::string_view kSnapshotLimitExceeded = "SnapshotLimitExceeded";
inline constexpr std::string_view kResourceLimitExceeded = "ResourceLimitExceeded";
// 401: the signature or credentials could not be validated.
inline constexpr std::string_view kAuthFailure = "AuthFailure";
// 403: authenticated, but the policy denies the action.
inline constexpr std::string_view kUnauthorizedOperation = "UnauthorizedOperation";
// 412: DryRun=true and the caller would have been allowed.
inline constexpr std::string_view kDryRunOperation = "DryRunOperation";
// 413 (snapvol's own code): the request body or parameter count exceeds our limits.
inline constexpr std::string_view kRequestEntityTooLarge = "RequestEntityTooLarge";
// 500: our bug or an unexpected failure; the client may retry.
inline constexpr std::string_view kInternalError = "InternalError";
inline constexpr std::string_view kInsufficientCapacity = "InsufficientCapacity";
// 503: temporarily unable to serve; the client should back off and retry.
inline constexpr std::string_view kUnavailable = "Unavailable";
inline constexpr std::string_view kRequestLimitExceeded = "RequestLimitExceeded";
}  // namespace ec2

struct ApiError {
  std::string code;     // EC2 error code, e.g. "InvalidParameterValue"
  std::string message;  // human-readable; echoed to the client (XML-escaped on output)
  int http_status = 400;
  bool operator==(const ApiError&) const = default;
};

template <typename T>
using ApiResult = std::expected<T, ApiError>;
using ApiStatus = std::expected<void, ApiError>;

// The HTTP status EC2 sends with a code: AuthFailure 401; UnauthorizedOperation 403;
// DryRunOperation 412; RequestEntityTooLarge 413; InternalError, InternalFailure and the
// Insufficient*Capacity codes 500; Unavailable, ServiceUnavailable, RequestLimitExceeded 503;
// every other code 400.
int HttpStatusForCode(std::string_view code);

// An ApiError whose http_status comes from HttpStatusForCode(code).
ApiError MakeApiError(std::string_view code, std::string message);
inline std::unexpected<ApiError> ApiFail(std::string_view code, std::string message) {
  return std::unexpected<ApiError>(MakeApiError(code, std::move(message)));
}

// "The request must contain the parameter <name>".
ApiError MissingParameter(std::string_view name);
// "Value (<value>) for parameter <name> is invalid. <expectation>" (value shortened if long).
ApiError InvalidParameterValue(std::string_view name, std::string_view value,
                               std::string_view expectation);

// Maps an Error from a lower layer to a generic EC2 error: InvalidArgument →
// InvalidParameterValue, Unauthorized → UnauthorizedOperation, Conflict/AlreadyExists →
// IncorrectState, Unsupported → UnsupportedOperation, NoSpace → InsufficientCapacity,
// retryable IoError → Unavailable, NotFound → InvalidParameterValue (handlers should use the
// resource-specific *.NotFound code instead), QuotaExceeded → ResourceLimitExceeded (handlers
// should use FromErrorWithLimit), anything else → InternalError with a generic message (the
// original message may reveal paths; log it, do not send it).
ApiError FromError(const Error& error);
// FromError, except that QuotaExceeded becomes limit_code (VolumeLimitExceeded for an action
// that creates a volume, SnapshotLimitExceeded for one that creates snapshots) with the
// quota's message.
ApiError FromErrorWithLimit(const Error& error, std::string_view limit_code);

// Shortens a client-supplied value for use inside an error message.
std::string QuoteForMessage(std::string_view value);

}  // namespace snapvol::api

// Like RETURN_IF_ERROR / ASSIGN_OR_RETURN from core/status.h, for ApiResult/ApiStatus.
#define API_RETURN_IF_ERROR(expr)                                                    \
  do {                                                                               \
    auto _api_st = (expr);                                                           \
    if (!_api_st) return std::unexpected<::snapvol::api::ApiError>(_api_st.error()); \
  } while (0)
#define API_ASSIGN_OR_RETURN(lhs, expr) \
  API_ASSIGN_OR_RETURN_IMPL(SNAPVOL_CONCAT(_api_res_, __LINE__), lhs, expr)
#define API_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)                                     \
  auto tmp = (expr);                                                                  \
  if (!tmp) return std::unexpected<::snapvol::api::ApiError>(std::move(tmp).error()); \
  lhs = std::move(*tmp)
