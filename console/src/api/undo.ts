// EC2's undo actions over the Query API: in-place rollback tasks (CreateReplaceRootVolumeTask,
// snapvol's RestoreVolumeFromSnapshot, DescribeReplaceRootVolumeTasks; the task's progress
// counters are snapvol's members of the XML, src/api/ec2_replace_root_volume.cc) and the Recycle
// Bin's two EC2 actions (ListSnapshotsInRecycleBin, RestoreSnapshotFromRecycleBin,
// src/api/ec2_recycle_bin.cc).

import { childText, ec2, items, type Params, type Tag } from "./ec2";
import type { Credentials } from "./session";

export interface RollbackTask {
  taskId: string;
  /** Empty for a volume that is not attached. */
  instanceId: string;
  volumeId: string;
  snapshotId: string;
  /** pending, in-progress, succeeded, failed, failed-detached. */
  state: string;
  /** "42%": the share of the volume compared so far. */
  progress: string;
  blocksCompared: number;
  bytesRead: number;
  bytesWritten: number;
  safetySnapshotId: string;
  /** Why it failed, or why it was forced. */
  reason: string;
  forced: boolean;
  deleteReplacedRootVolume: boolean;
  startTime: string;
  completeTime: string;
  tags: Tag[];
}

/** Whether a task may still change (the page keeps reloading while one does). */
export function taskRunning(t: RollbackTask): boolean {
  return t.state === "pending" || t.state === "in-progress";
}

export function parseRollbackTask(el: Element): RollbackTask {
  const n = (name: string) => Number(childText(el, name) || 0);
  return {
    taskId: childText(el, "replaceRootVolumeTaskId"),
    instanceId: childText(el, "instanceId"),
    volumeId: childText(el, "volumeId"),
    snapshotId: childText(el, "snapshotId"),
    state: childText(el, "taskState"),
    progress: childText(el, "progress"),
    blocksCompared: n("blocksCompared"),
    bytesRead: n("bytesRead"),
    bytesWritten: n("bytesWritten"),
    safetySnapshotId: childText(el, "safetySnapshotId"),
    reason: childText(el, "stateReason"),
    forced: childText(el, "forced") === "true",
    deleteReplacedRootVolume: childText(el, "deleteReplacedRootVolume") === "true",
    startTime: childText(el, "startTime"),
    completeTime: childText(el, "completeTime"),
    tags: items(el, "tagSet").map((t) => ({ key: childText(t, "key"), value: childText(t, "value") })),
  };
}

/** Every task the caller may see (its account's; an administrator's: every account's), all
 *  pages of DescribeReplaceRootVolumeTasks (50 a page). */
export async function describeRollbackTasks(creds: Credentials): Promise<RollbackTask[]> {
  const out: RollbackTask[] = [];
  let token: string | undefined;
  do {
    const root = await ec2(creds, "DescribeReplaceRootVolumeTasks", { MaxResults: "50", NextToken: token });
    for (const t of items(root, "replaceRootVolumeTaskSet")) out.push(parseRollbackTask(t));
    token = childText(root, "nextToken") || undefined;
  } while (token);
  return out;
}

export interface RollbackRequest {
  volumeId: string;
  snapshotId: string;
  /** SafetySnapshot: on unless turned off (the server's default too, sent either way). */
  safetySnapshot: boolean;
  /** Force and Reason: only for a volume attached to a running instance. */
  force: boolean;
  reason: string;
}

/** RestoreVolumeFromSnapshot: rolls the volume back in place; resolves with the task. Force
 *  and Reason are sent only when forcing (Reason only when given). */
export async function restoreVolumeFromSnapshot(creds: Credentials, r: RollbackRequest): Promise<RollbackTask> {
  const params: Params = {
    VolumeId: r.volumeId,
    SnapshotId: r.snapshotId,
    SafetySnapshot: r.safetySnapshot ? "true" : "false",
  };
  if (r.force) {
    params.Force = "true";
    if (r.reason !== "") params.Reason = r.reason;
  }
  const root = await ec2(creds, "RestoreVolumeFromSnapshot", params);
  return parseRollbackTask(firstChild(root, "replaceRootVolumeTask"));
}

/** CreateReplaceRootVolumeTask for an instance's root volume; resolves with the task. */
export async function createReplaceRootVolumeTask(
  creds: Credentials,
  instanceId: string,
  snapshotId: string,
  deleteReplacedRootVolume: boolean,
): Promise<RollbackTask> {
  const params: Params = { InstanceId: instanceId, SnapshotId: snapshotId };
  if (deleteReplacedRootVolume) params.DeleteReplacedRootVolume = "true";
  const root = await ec2(creds, "CreateReplaceRootVolumeTask", params);
  return parseRollbackTask(firstChild(root, "replaceRootVolumeTask"));
}

function firstChild(root: Element, name: string): Element {
  for (const c of Array.from(root.children)) if (c.localName === name) return c;
  return root;
}

export interface BinnedSnapshot {
  snapshotId: string;
  description: string;
  volumeId: string;
  /** When it was deleted into the bin. */
  enterTime: string;
  /** When its retention ends (it is deleted for good then). */
  exitTime: string;
}

/** Every snapshot in the Recycle Bin the caller may see (all pages, 1,000 a page). */
export async function listSnapshotsInRecycleBin(creds: Credentials): Promise<BinnedSnapshot[]> {
  const out: BinnedSnapshot[] = [];
  let token: string | undefined;
  do {
    const root = await ec2(creds, "ListSnapshotsInRecycleBin", { MaxResults: "1000", NextToken: token });
    for (const s of items(root, "snapshotSet"))
      out.push({
        snapshotId: childText(s, "snapshotId"),
        description: childText(s, "description"),
        volumeId: childText(s, "volumeId"),
        enterTime: childText(s, "recycleBinEnterTime"),
        exitTime: childText(s, "recycleBinExitTime"),
      });
    token = childText(root, "nextToken") || undefined;
  } while (token);
  return out;
}

export async function restoreSnapshotFromRecycleBin(creds: Credentials, snapshotId: string): Promise<void> {
  await ec2(creds, "RestoreSnapshotFromRecycleBin", { SnapshotId: snapshotId });
}
