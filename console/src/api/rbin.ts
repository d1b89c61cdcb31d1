// Amazon Recycle Bin's REST-JSON API (SigV4 service `rbin`; snapvold routes POST /rules,
// POST /list-rules and /rules/{id}[/lock|/unlock] to it, src/api/rbin_api.cc): the account's
// retention rules. Errors come as {"Message", "Reason"} with the type in x-amzn-ErrorType
// (signedJson reads both). ResourceType is EBS_SNAPSHOT: the only type snapvol keeps.

import type { Credentials } from "./session";
import { signedJson } from "./snapvol";

export interface ResourceTag {
  ResourceTagKey: string;
  ResourceTagValue?: string;
}

export interface RetentionPeriod {
  RetentionPeriodValue: number;
  RetentionPeriodUnit: "DAYS";
}

export interface RuleSummary {
  Identifier: string;
  Description?: string;
  RetentionPeriod?: RetentionPeriod;
  RuleArn?: string;
  /** locked, pending_unlock or unlocked; absent for a rule never locked. */
  LockState?: string;
}

export interface Rule extends RuleSummary {
  ResourceType?: string;
  ResourceTags?: ResourceTag[];
  ExcludeResourceTags?: ResourceTag[];
  Status?: string;
  LockConfiguration?: { UnlockDelay: { UnlockDelayValue: number; UnlockDelayUnit: "DAYS" } };
  /** When a pending unlock takes effect (epoch seconds). */
  LockEndTime?: number | string;
}

const rbin = <T>(c: Credentials, method: "GET" | "POST" | "PATCH" | "DELETE", path: string, body?: unknown) =>
  signedJson<T>(c, "rbin", method, path, body);

/** ListRules, every page. */
export async function listRules(c: Credentials): Promise<RuleSummary[]> {
  const out: RuleSummary[] = [];
  let token: string | undefined;
  do {
    const body: Record<string, unknown> = { ResourceType: "EBS_SNAPSHOT" };
    if (token) body.NextToken = token;
    const page = await rbin<{ Rules?: RuleSummary[]; NextToken?: string }>(c, "POST", "/list-rules", body);
    out.push(...(page.Rules ?? []));
    token = page.NextToken;
  } while (token);
  return out;
}

export const getRule = (c: Credentials, id: string) => rbin<Rule>(c, "GET", `/rules/${encodeURIComponent(id)}`);

/** What the rule form sends: each member only when the user gave it (an empty description is
 *  left out on create; on update it is sent, since clearing it is a change). */
export interface RuleFields {
  Description?: string;
  RetentionPeriod?: RetentionPeriod;
  ResourceTags?: ResourceTag[];
  ExcludeResourceTags?: ResourceTag[];
}

export const createRule = (c: Credentials, fields: RuleFields & { LockConfiguration?: Rule["LockConfiguration"] }) =>
  rbin<Rule>(c, "POST", "/rules", { ResourceType: "EBS_SNAPSHOT", ...fields });

export const updateRule = (c: Credentials, id: string, fields: RuleFields) =>
  rbin<Rule>(c, "PATCH", `/rules/${encodeURIComponent(id)}`, fields);

export const deleteRule = (c: Credentials, id: string) => rbin<unknown>(c, "DELETE", `/rules/${encodeURIComponent(id)}`);

export const lockRule = (c: Credentials, id: string, unlockDelayDays: number) =>
  rbin<Rule>(c, "PATCH", `/rules/${encodeURIComponent(id)}/lock`, {
    LockConfiguration: { UnlockDelay: { UnlockDelayValue: unlockDelayDays, UnlockDelayUnit: "DAYS" } },
  });

export const unlockRule = (c: Credentials, id: string) => rbin<Rule>(c, "PATCH", `/rules/${encodeURIComponent(id)}/unlock`);

/** AWS's bounds, as snapvold checks them (src/api/rbin_api.cc). */
export const kMinRetentionDays = 1;
export const kMaxRetentionDays = 3650;
export const kMinUnlockDelayDays = 7;
export const kMaxUnlockDelayDays = 30;
export const kMaxRuleDescriptionChars = 255;
export const kMaxResourceTags = 50;
export const kMaxExcludeTags = 5;
export const kMaxResourceTagKeyChars = 128;
export const kMaxResourceTagValueChars = 256;
