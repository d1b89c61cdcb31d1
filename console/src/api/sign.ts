// SigV4-signed fetch to the same origin the console was served from. Signing is done by
// @smithy/signature-v4 (the AWS SDK's signer) with the pure-JS SHA-256 of @aws-crypto, which
// works in any browsing context (WebCrypto needs a secure context).

import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";

import { apiFailure } from "./errors";
import type { Credentials } from "./session";

export interface SignedRequest {
  method: "GET" | "POST" | "PATCH" | "PUT" | "DELETE";
  path: string;
  query?: Record<string, string>;
  body?: string;
  contentType?: string;
}

/** Signs `req` for `service` with `creds` and sends it. Resolves with the response whatever
 *  its status; rejects with ApiError("NetworkError") (told to onApiError's listeners) when no
 *  answer came back. */
export async function signedFetch(creds: Credentials, service: string, req: SignedRequest): Promise<Response> {
  const signer = new SignatureV4({
    service,
    region: creds.region,
    credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey },
    sha256: Sha256,
    applyChecksum: false,
  });
  const headers: Record<string, string> = { host: location.host };
  if (req.body !== undefined) headers["content-type"] = req.contentType ?? "application/json";
  const signed = await signer.sign({
    method: req.method,
    protocol: location.protocol,
    hostname: location.hostname,
    port: location.port ? Number(location.port) : undefined,
    path: req.path,
    query: req.query ?? {},
    headers,
    body: req.body,
  });
  const send = new Headers();
  for (const [name, value] of Object.entries(signed.headers)) {
    if (name.toLowerCase() !== "host") send.set(name, value); // the browser sends Host itself
  }
  const qs = encodeForm(req.query ?? {});
  const url = req.path + (qs ? `?${qs}` : "");
  try {
    return await fetch(url, { method: req.method, headers: send, body: req.body, cache: "no-store" });
  } catch (e) {
    throw apiFailure("NetworkError", `Could not reach snapvold (${e instanceof Error ? e.message : String(e)}).`, undefined);
  }
}

/** RFC 3986 percent-encoding (what SigV4 canonicalises to), for query strings and form bodies. */
export function rfc3986(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

export function encodeForm(params: Record<string, string>): string {
  return Object.entries(params)
    .map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`)
    .join("&");
}
