// The one error type the console shows: what the server (or the network) said, in words a
// snapvol user can act on. The server's code is kept as it was sent; its message is replaced
// only where it speaks of AWS or of signatures rather than of what to do.

export class ApiError extends Error {
  /** The server's error code (EC2 `Code`, JSON `error.code`), or a local one like `NetworkError`. */
  readonly code: string;
  /** The HTTP status, 0 when no answer came back. */
  readonly status: number;
  /** The server's clock when it answered (its Date header), in ms since the epoch, if it sent one. */
  readonly serverTime: number | undefined;
  /** The console's clock when the request was signed, in ms since the epoch. */
  readonly signedAt: number | undefined;

  constructor(code: string, message: string, status: number, serverTime?: number, signedAt?: number) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
    this.serverTime = serverTime;
    this.signedAt = signedAt;
  }
}

/** Any thrown value as an ApiError, so every error path shows a code and a message. */
export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof Error) return new ApiError("ClientError", e.message, 0);
  return new ApiError("ClientError", String(e), 0);
}

/** Codes that say the signing key itself is not accepted (unknown, disabled, deleted, or a
 *  wrong secret): EC2's AuthFailure; what DLM and other JSON services say instead. */
const kKeyRefused = new Set(["AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException", "InvalidSignatureException", "SignatureDoesNotMatch"]);

type Listener = (e: ApiError) => void;
const listeners = new Set<Listener>();

/** Subscribes to every error an API call fails with (the shell ends the session on a refused
 *  key); returns the unsubscribe function. */
export function onApiError(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The error a request failed with, told to the listeners, then returned to be thrown. */
export function apiFailure(code: string, message: string, res: Response | undefined): ApiError {
  const date = res?.headers.get("date");
  const serverTime = date ? Date.parse(date) : NaN;
  const e = new ApiError(code, message, res?.status ?? 0, isNaN(serverTime) ? undefined : serverTime, Date.now());
  for (const l of [...listeners]) l(e);
  return e;
}

/** The key the console signs with is no longer accepted: the session is over. */
export function isKeyRefused(e: ApiError): boolean {
  return kKeyRefused.has(e.code);
}

/** The request was refused because this computer's clock is too far from snapvold's. */
export function isClockSkew(e: ApiError): boolean {
  // DLM wraps EC2's code into its own InvalidRequestException: "RequestExpired: …".
  return e.code === "RequestExpired" || e.code === "RequestTimeTooSkewed" || /^RequestExpired: /.test(e.message);
}

/** Errors that every request fails with at once (the key, the clock, the network): the shell
 *  shows them once for the whole page instead of once per list or loader. */
export function isSessionWide(e: ApiError): boolean {
  return isKeyRefused(e) || isClockSkew(e) || e.code === "NetworkError";
}

/** "20261203T222500Z" → ms since the epoch. */
function amzDate(s: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return undefined;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

/** How far this computer's clock is from snapvold's, in ms (positive: ahead), from the
 *  server's message ("its timestamp … from the server time …") or else its Date header. */
export function clockOffsetMs(e: ApiError): number | undefined {
  const m = /timestamp (\d{8}T\d{6}Z).*server time (\d{8}T\d{6}Z)/.exec(e.message);
  if (m) {
    const signed = amzDate(m[1]);
    const server = amzDate(m[2]);
    if (signed !== undefined && server !== undefined) return signed - server;
  }
  if (e.serverTime !== undefined && e.signedAt !== undefined) return e.signedAt - e.serverTime;
  return undefined;
}

/** An offset in words: "47 minutes", "3 hours and 5 minutes", "2 days". */
function offsetWords(ms: number): string {
  const minutes = Math.round(Math.abs(ms) / 60000);
  if (minutes < 120) return `${minutes} minute${minutes === 1 ? "" : "s"}`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} hours and ${minutes % 60} minutes`;
  return `${Math.round(hours / 24)} days`;
}

export interface Explained {
  /** What happened, in snapvol's words. */
  what: string;
  /** What to do about it; empty when the message says it already. */
  todo: string;
}

/** An error in words a person can act on; the code is shown beside it by ErrorNote. */
export function explain(e: ApiError): Explained {
  if (isClockSkew(e)) {
    const off = clockOffsetMs(e);
    const what =
      off === undefined
        ? "snapvol refused the request because your computer's clock is wrong (more than 15 minutes off)."
        : `Your computer's clock is off by ${offsetWords(off)} (it is ${off > 0 ? "ahead of" : "behind"} snapvold's), so snapvol refused the request.`;
    return { what, todo: "Set the clock right (turn on automatic date and time), then reload this page." };
  }
  if (isKeyRefused(e))
    return {
      what: "snapvol did not accept this access key: the key ID or secret is wrong, or the key has been disabled or deleted.",
      todo: "Check both and sign in again; an administrator can enable your key or create a new one.",
    };
  switch (e.code) {
    case "MissingAuthenticationToken":
    case "IncompleteSignature":
      return { what: "The request reached snapvold without a valid signature.", todo: "Reload the page and sign in again." };
    case "UnauthorizedOperation":
    case "AccessDeniedException":
      return {
        what: "Your account is not allowed to do this.",
        todo: "Ask a snapvol administrator; to get data back from a snapshot, file a restore request.",
      };
    case "NetworkError":
      return {
        what: "snapvold cannot be reached.",
        todo: "Check that it is running and that this computer can reach it, then try again.",
      };
    case "InternalError":
    case "InternalFailure":
      return { what: "snapvold failed while answering.", todo: "Try again; if it keeps failing, an operator finds the reason in snapvold's log." };
    case "Unavailable":
    case "ServiceUnavailable":
    case "RequestLimitExceeded":
      return { what: "snapvold is busy.", todo: "Try again in a moment." };
  }
  return { what: e.message || "The request failed.", todo: "" };
}
