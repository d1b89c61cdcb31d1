// The one error type the console shows: what the server (or the network) said, in words.

export class ApiError extends Error {
  /** The server's error code (EC2 `Code`, JSON `error.code`), or a local one like `NetworkError`. */
  readonly code: string;
  /** The HTTP status, 0 when no answer came back. */
  readonly status: number;

  constructor(code: string, message: string, status: number) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
  }
}

/** Any thrown value as an ApiError, so every error path shows a code and a message. */
export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof Error) return new ApiError("ClientError", e.message, 0);
  return new ApiError("ClientError", String(e), 0);
}
