// Lifecycle policies over the Amazon DLM REST/JSON API (service `dlm`): GET /policies,
// POST /policies, GET /policies/{id}, PATCH /policies/{id}, DELETE /policies/{id}.
// Shapes follow DLM's documentation.

import type { Credentials } from "./session";
import { signedJson } from "./snapvol";

export interface PolicySummary {
  PolicyId: string;
  Description?: string;
  State?: string;
  PolicyType?: string;
  Tags?: Record<string, string>;
}

export interface CreateRule {
  Interval?: number;
  IntervalUnit?: string;
  Times?: string[];
  CronExpression?: string;
  Location?: string;
}

export interface RetainRule {
  Count?: number;
  Interval?: number;
  IntervalUnit?: string;
}

export interface Schedule {
  Name?: string;
  CopyTags?: boolean;
  TagsToAdd?: { Key: string; Value: string }[];
  CreateRule?: CreateRule;
  RetainRule?: RetainRule;
}

export interface PolicyDetails {
  PolicyType?: string;
  ResourceTypes?: string[];
  TargetTags?: { Key: string; Value: string }[];
  Schedules?: Schedule[];
  [other: string]: unknown;
}

export interface Policy {
  PolicyId: string;
  Description?: string;
  State?: string;
  StatusMessage?: string;
  ExecutionRoleArn?: string;
  DateCreated?: string | number;
  DateModified?: string | number;
  PolicyDetails?: PolicyDetails;
  Tags?: Record<string, string>;
}

export interface PolicyUpdate {
  State?: string;
  Description?: string;
  PolicyDetails?: PolicyDetails;
}

export const listPolicies = async (c: Credentials) =>
  (await signedJson<{ Policies?: PolicySummary[] }>(c, "dlm", "GET", "/policies")).Policies ?? [];

export const getPolicy = async (c: Credentials, id: string) =>
  (await signedJson<{ Policy: Policy }>(c, "dlm", "GET", `/policies/${encodeURIComponent(id)}/`)).Policy;

export const updatePolicy = (c: Credentials, id: string, update: PolicyUpdate) =>
  signedJson<unknown>(c, "dlm", "PATCH", `/policies/${encodeURIComponent(id)}`, update);

export interface NewPolicy {
  ExecutionRoleArn: string;
  Description: string;
  State: "ENABLED" | "DISABLED";
  PolicyDetails: PolicyDetails;
  Tags?: Record<string, string>;
}

/** CreateLifecyclePolicy; resolves with the new policy's id. */
export const createPolicy = async (c: Credentials, policy: NewPolicy) =>
  (await signedJson<{ PolicyId: string }>(c, "dlm", "POST", "/policies", policy)).PolicyId;

/** DeleteLifecyclePolicy. signedJson's type lists GET, POST and PATCH only; the request it
 *  makes (signedFetch) takes DELETE like any other method. */
export const deletePolicy = (c: Credentials, id: string) =>
  signedJson<unknown>(c, "dlm", "DELETE" as "GET", `/policies/${encodeURIComponent(id)}`);

/** What DLM accepts in a policy's Description: 1-500 of 0-9 A-Z a-z space _ - (snapvold's check). */
export const kMaxPolicyDescriptionChars = 500;
export const kPolicyDescriptionChars = /^[0-9A-Za-z _-]*$/;
/** A schedule's Name: 1-120 characters. */
export const kMaxScheduleNameChars = 120;
/** Interval schedules run every 1, 2, 3, 4, 6, 8, 12 or 24 hours. */
export const kIntervals = [1, 2, 3, 4, 6, 8, 12, 24];
/** RetainRule: Count 1-1000, or an age up to these. */
export const kMaxRetainCount = 1000;
export const kMaxRetainAge: Record<string, number> = { DAYS: 36500, WEEKS: 5200, MONTHS: 1200, YEARS: 100 };

/** DLM timestamps come as epoch seconds (numbers) or ISO strings. */
export function dlmTime(t: string | number | undefined): string {
  if (t === undefined || t === "") return "";
  const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
  return isNaN(d.getTime()) ? String(t) : d.toISOString();
}

/** One run of a policy's schedule (snapvol's addition to DLM: GET /policies/{id}/runs). */
export interface PolicyRun {
  ScheduleName?: string;
  ScheduledTime?: string | number;
  StartTime?: string | number;
  EndTime?: string | number;
  State?: string;
  SnapshotsCreated?: number;
  SnapshotsFailed?: number;
  SnapshotsDeleted?: number;
  MissedRuns?: number;
  Message?: string;
}

/** The policy's last `limit` runs, newest first. */
export const listRuns = async (c: Credentials, id: string, limit: number) =>
  (await signedJson<{ Runs?: PolicyRun[] }>(c, "dlm", "GET", `/policies/${encodeURIComponent(id)}/runs`, undefined, { limit: String(limit) })).Runs ?? [];
