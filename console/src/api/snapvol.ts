// snapvol's JSON API under /api/v1 (service `snapvol`): identity, restore requests, and for
// administrators accounts, keys and the audit log.

import { ApiError, apiFailure } from "./errors";
import type { Credentials } from "./session";
import { signedFetch } from "./sign";

export interface Identity {
  accountId: string;
  alias: string;
  isAdmin: boolean;
  accessKeyId: string;
  user?: string;
  region?: string;
  /** Seconds without a click or key press after which the console signs out (snapvold
   *  --console-idle-timeout). */
  consoleIdleSeconds?: number;
}

export interface RestoreRequest {
  restoreRequestId: string;
  snapshotId: string;
  accountId: string;
  reason: string;
  state: string;
  requestedAt: string;
  decidedBy?: string;
  decisionReason?: string;
  decidedAt?: string;
  /** new-volume: the restored volume (once approved); in-place: the volume rolled back. */
  volumeId?: string;
  /** "new-volume" or "in-place" (src/api/restore_requests.cc). */
  restoreType?: string;
  /** An approved in-place request: its rollback task, that task's state and progress (percent). */
  replaceRootVolumeTaskId?: string;
  taskState?: string;
  taskProgress?: number;
  safetySnapshotId?: string;
}

export interface AccessKeySummary {
  accessKeyId: string;
  userName?: string;
  createdAt: string;
  /** IAM's words: a disabled key is "Inactive" (refused everywhere until enabled). */
  status?: "Active" | "Inactive";
  statusChangedAt?: string;
}

export interface Account {
  accountId: string;
  alias: string;
  isAdmin: boolean;
  createdAt: string;
  accessKeys: AccessKeySummary[];
}

export interface NewAccessKey {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface AuditEvent {
  time: string;
  accountId: string;
  user: string;
  status: string;
  action: string;
  resource: string;
  decision: string;
  code: string;
  message: string;
}

/** A signed JSON request; resolves with the parsed body, rejects with the server's
 *  {"error":{"code","message"}} as an ApiError. */
export async function signedJson<T>(
  creds: Credentials,
  service: string,
  method: "GET" | "POST" | "PATCH" | "DELETE",
  path: string,
  body?: unknown,
  query?: Record<string, string>,
): Promise<T> {
  const res = await signedFetch(creds, service, {
    method,
    path,
    query,
    body: body === undefined ? undefined : JSON.stringify(body),
    contentType: "application/json",
  });
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = undefined;
  }
  if (!res.ok) throw errorFromBody(res, parsed, text);
  if (parsed === undefined) throw new ApiError("InvalidResponse", `The answer to ${method} ${path} is not JSON.`, res.status);
  return parsed as T;
}

function errorFromBody(res: Response, parsed: unknown, text: string): ApiError {
  if (parsed === undefined && text.trim().startsWith("<")) {
    // Paths the server does not route answer with EC2's XML error document.
    const doc = new DOMParser().parseFromString(text, "application/xml");
    const code = doc.getElementsByTagName("Code")[0]?.textContent;
    const message = doc.getElementsByTagName("Message")[0]?.textContent;
    if (code || message) return apiFailure(code || `HTTP${res.status}`, message || res.statusText, res);
  }
  const o = (parsed ?? {}) as Record<string, unknown>;
  const inner = (o.error ?? o) as Record<string, unknown>;
  const code =
    (typeof inner.code === "string" && inner.code) ||
    (typeof inner.Code === "string" && inner.Code) ||
    (res.headers.get("x-amzn-errortype") ?? "").split(":")[0] ||
    `HTTP${res.status}`;
  const message =
    (typeof inner.message === "string" && inner.message) ||
    (typeof inner.Message === "string" && inner.Message) ||
    text.trim().slice(0, 300) ||
    res.statusText;
  return apiFailure(code, message, res);
}

const api = <T>(creds: Credentials, method: "GET" | "POST" | "DELETE", path: string, body?: unknown, query?: Record<string, string>) =>
  signedJson<T>(creds, "snapvol", method, `/api/v1${path}`, body, query);

export const whoami = (c: Credentials) => api<Identity>(c, "GET", "/whoami");

export const listRestoreRequests = async (c: Credentials) =>
  (await api<{ restoreRequests: RestoreRequest[] }>(c, "GET", "/restore-requests")).restoreRequests;

/** Files a restore request: into a new volume, or (`inPlaceVolumeId` given) rolling that
 *  volume back in place; restoreType and volumeId are sent only for in-place. */
export const createRestoreRequest = async (c: Credentials, snapshotId: string, reason: string, inPlaceVolumeId?: string) =>
  (
    await api<{ restoreRequest: RestoreRequest }>(
      c,
      "POST",
      "/restore-requests",
      inPlaceVolumeId ? { snapshotId, reason, restoreType: "in-place", volumeId: inPlaceVolumeId } : { snapshotId, reason },
    )
  ).restoreRequest;

export const decideRestoreRequest = async (c: Credentials, id: string, approve: boolean, reason: string) =>
  (
    await api<{ restoreRequest: RestoreRequest }>(
      c,
      "POST",
      `/restore-requests/${encodeURIComponent(id)}/${approve ? "approve" : "reject"}`,
      { reason },
    )
  ).restoreRequest;

/** GET /api/v1/usage: stored bytes each account's snapshots hold alone and share with other
 *  accounts' (a member gets its own account; an administrator every account and the total). */
export interface AccountUsage {
  accountId: string;
  alias: string;
  exclusiveBytes: number;
  sharedBytes: number;
  snapshots: number;
}
export interface UsageReport {
  accounts: AccountUsage[];
  pendingChanges: number;
  storedBytes?: number;
}
export const getUsage = async (c: Credentials) => await api<UsageReport>(c, "GET", "/usage");

export const listAccounts = async (c: Credentials) => (await api<{ accounts: Account[] }>(c, "GET", "/accounts")).accounts;

export const createAccount = async (c: Credentials, alias: string) =>
  (await api<{ account: Account }>(c, "POST", "/accounts", { alias })).account;

export const createAccessKey = async (c: Credentials, accountId: string) =>
  (await api<{ accessKey: NewAccessKey }>(c, "POST", `/accounts/${encodeURIComponent(accountId)}/keys`, {})).accessKey;

/** Disables (IAM "Inactive") or enables an access key; the server refuses the last active key
 *  of an administrator account by name (IncorrectState). */
export const setAccessKeyActive = async (c: Credentials, accessKeyId: string, active: boolean) =>
  (await api<{ accessKey: AccessKeySummary }>(c, "POST", `/keys/${encodeURIComponent(accessKeyId)}/${active ? "enable" : "disable"}`))
    .accessKey;

export const deleteAccessKey = async (c: Credentials, accessKeyId: string) => {
  await api<{ deleted: string }>(c, "DELETE", `/keys/${encodeURIComponent(accessKeyId)}`);
};

/** The last `limit` audit events of the host that answered (each host keeps its own), newest
 *  first, and that host. The server returns its log lines as written (`ts`, `account_id`,
 *  `error`, `detail`, …); they are mapped onto AuditEvent here. */
export async function listAudit(
  c: Credentials,
  limit: number,
): Promise<{ events: AuditEvent[]; host: { hostId: string; name: string } | null }> {
  const answer = await api<{ events: Record<string, unknown>[]; host?: { hostId: string; name: string } | null }>(
    c,
    "GET",
    "/audit",
    undefined,
    { limit: String(limit) },
  );
  const raw = answer.events;
  const str = (o: Record<string, unknown>, ...names: string[]) => {
    for (const n of names) if (typeof o[n] === "string" || typeof o[n] === "number") return String(o[n]);
    return "";
  };
  const events = raw
    .map((e) => ({
      time: str(e, "time", "ts"),
      accountId: str(e, "accountId", "account_id"),
      user: str(e, "user"),
      action: str(e, "action"),
      resource: str(e, "resource"),
      decision: str(e, "decision"),
      status: str(e, "status"),
      code: str(e, "code", "error"),
      message: str(e, "message", "detail"),
    }))
    .reverse();
  return { events, host: answer.host ?? null };
}

/** A volume as GET /api/v1/volumes lists it (administrators): EC2's fields plus the owning
 *  account and the exact size in bytes. */
export interface AccountVolume {
  volumeId: string;
  accountId: string;
  sizeGiB: number;
  sizeBytes: number;
  snapshotId: string;
  state: string;
  createTime: string;
  volumeType: string;
  encrypted: boolean;
  attachments: { instanceId: string; device: string; state: string; attachTime: string }[];
  tags: { key: string; value: string }[];
}

/** Every account's volumes (`account` "all") or one account's; administrators only. */
export const listAccountVolumes = async (c: Credentials, account: string) =>
  (await api<{ volumes: AccountVolume[] }>(c, "GET", "/volumes", undefined, { account })).volumes;

/** What DescribeSnapshots does not carry (GET /api/v1/snapshots/ID): exact sizes, bytes
 *  stored, the parent (named only when the caller may read it) and the completion time. */
export interface SnapshotDetails {
  snapshotId: string;
  accountId: string;
  volumeId: string;
  state: string;
  progress: string;
  volumeSizeBytes: number;
  volumeSizeGiB: number;
  blockSize: number;
  totalBlocks: number;
  changedBlocks: number;
  storedBytes: number;
  startTime: string;
  completionTime?: string;
  stateMessage?: string;
  encrypted: boolean;
  incremental: boolean;
  parentSnapshotId?: string;
  /** counted: the two sizes below are there; pending: not counted yet (a few seconds after
   *  completion); not-completed; unavailable (usageError says why); not-kept. */
  usageStatus: "counted" | "pending" | "not-completed" | "unavailable" | "not-kept";
  /** Bytes of the volume's blocks that are not holes (EC2's FullSnapshotSizeInBytes). */
  fullSnapshotSizeBytes?: number;
  /** Stored bytes only this snapshot references: what deleting it alone frees. */
  uniqueBytes?: number;
  usageError?: string;
}

export const getSnapshotDetails = async (c: Credentials, snapshotId: string) =>
  (await api<{ snapshot: SnapshotDetails }>(c, "GET", `/snapshots/${encodeURIComponent(snapshotId)}`)).snapshot;

/** One volume the caller may see (GET /api/v1/volumes/ID), with its exact size in bytes. */
export const getVolumeDetails = async (c: Credentials, volumeId: string) =>
  (await api<{ volume: AccountVolume }>(c, "GET", `/volumes/${encodeURIComponent(volumeId)}`)).volume;

/** A maintenance run of snapvold (GC, verification or restore drill) as GET /api/v1/jobs lists it. */
export interface MaintenanceRun {
  runId: number;
  job: "gc" | "verify" | "drill";
  trigger: "scheduled" | "manual";
  mode?: string;
  state: "queued" | "running" | "succeeded" | "failed";
  scheduledAt: string;
  startedAt?: string;
  finishedAt?: string;
  missed: number;
  message: string;
  bytesFreed?: number;
  objectsDeleted?: number;
  /** verify: snapshots checked; drill: snapshots restored. */
  snapshotsChecked?: number;
  /** verify: objects checked; drill: blocks checked. */
  objectsChecked?: number;
  /** verify: snapshots found damaged; drill: snapshots whose drill failed. */
  damagedSnapshots?: string[];
}

export interface JobSchedule {
  enabled: boolean;
  dailyAt?: string;
  everySeconds?: number;
  graceSeconds?: number;
  periodDays?: number;
  mode?: string;
  perAccount?: number;
  checkCommand?: string[];
}

export const listJobRuns = (c: Credentials, limit: number) =>
  api<{ runs: MaintenanceRun[]; schedule?: { gc: JobSchedule; verify: JobSchedule; drill?: JobSchedule } }>(c, "GET", "/jobs", undefined, {
    limit: String(limit),
  });

export const runJob = async (c: Credentials, job: "gc" | "verify" | "drill", mode?: "full" | "quick") =>
  (await api<{ run: MaintenanceRun }>(c, "POST", "/jobs/run", mode ? { job, mode } : { job })).run;
