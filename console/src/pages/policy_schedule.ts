// A lifecycle policy's schedule and retention as snapvold's scheduler applies them
// (src/lifecycle/policy_details.cc and scheduler.cc), so the console can say when a policy runs
// next and which snapshots its retention rule deletes then. Times are epoch ms, UTC.
//
// - Interval schedules: every N hours (1,2,3,4,6,8,12,24) at the times offset by Times[0]
//   (hh:mm UTC) modulo the period, counted from the epoch: 6 hours at 01:30 is 01:30, 07:30,
//   13:30, 19:30 UTC. A run starts within a second of its time.
// - Cron schedules: DLM's cron(min hour day-of-month month day-of-week year), SUN = 1.
// - Retention runs after a run's snapshots have settled, per volume that got a completed
//   snapshot, over the completed snapshots tagged aws:dlm:lifecycle-policy-id = the policy and
//   aws:dlm:lifecycle-schedule-name = the schedule's name: newest first (start time, then id), the newest
//   always stays; Count keeps that many, an age rule deletes what started before now − age.
//   Locked snapshots and those a running restore reads stay.

import type { CreateRule, RetainRule } from "../api/dlm";
import type { Snapshot } from "../api/ec2";

export const kPolicyIdTag = "aws:dlm:lifecycle-policy-id";
export const kScheduleTag = "aws:dlm:lifecycle-schedule-name";

const kMinute = 60_000;
const kHour = 60 * kMinute;
const kDay = 24 * kHour;

const floorDiv = (a: number, b: number) => Math.floor(a / b);

function parseHhMm(s: string | undefined): number | null {
  if (s === undefined) return 0;
  const m = /^(\d\d):(\d\d)$/.exec(s);
  if (!m) return null;
  const h = Number(m[1]);
  const min = Number(m[2]);
  return h > 23 || min > 59 ? null : h * 60 + min;
}

interface Cron {
  minutes: Set<number> | null;
  hours: Set<number> | null;
  dom: Set<number> | null; // null: any
  months: Set<number> | null;
  dow: Set<number> | null;
  years: Set<number> | null;
}

function cronField(field: string, lo: number, hi: number, names?: string[]): Set<number> | null {
  if (field === "*" || field === "?") return null;
  const out = new Set<number>();
  const value = (tok: string) => {
    const i = names ? names.indexOf(tok.toUpperCase()) : -1;
    if (i >= 0) return lo + i;
    if (!/^\d+$/.test(tok)) throw new Error(`cron value ${tok}`);
    return Number(tok);
  };
  for (const raw of field.split(",")) {
    let item = raw;
    let step = 1;
    const slash = item.indexOf("/");
    if (slash >= 0) {
      step = value(item.slice(slash + 1));
      item = item.slice(0, slash);
    }
    let a = lo;
    let b = hi;
    if (item !== "*") {
      const dash = item.indexOf("-");
      if (dash >= 0) {
        a = value(item.slice(0, dash));
        b = value(item.slice(dash + 1));
      } else {
        a = value(item);
        b = step > 1 ? hi : a;
      }
    }
    for (let i = a; i <= b; i += step) out.add(i);
  }
  return out;
}

function parseCron(expr: string): Cron | null {
  const m = /^cron\((.*)\)$/.exec(expr.trim());
  if (!m) return null;
  const f = m[1].split(" ").filter(Boolean);
  if (f.length !== 6) return null;
  try {
    return {
      minutes: cronField(f[0], 0, 59),
      hours: cronField(f[1], 0, 23),
      dom: cronField(f[2], 1, 31),
      months: cronField(f[3], 1, 12, ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]),
      dow: cronField(f[4], 1, 7, ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]),
      years: cronField(f[5], 1970, 2199),
    };
  } catch {
    return null;
  }
}

function cronDayMatches(c: Cron, dayIndex: number): boolean {
  const d = new Date(dayIndex * kDay);
  if (c.years && !c.years.has(d.getUTCFullYear())) return false;
  if (c.months && !c.months.has(d.getUTCMonth() + 1)) return false;
  if (c.dom && !c.dom.has(d.getUTCDate())) return false;
  if (c.dow && !c.dow.has(d.getUTCDay() + 1)) return false;
  return true;
}

function cronTimesOfDay(c: Cron): number[] {
  const out: number[] = [];
  for (let h = 0; h < 24; h++) {
    if (c.hours && !c.hours.has(h)) continue;
    for (let m = 0; m < 60; m++) if (!c.minutes || c.minutes.has(m)) out.push(h * kHour + m * kMinute);
  }
  return out;
}

/** The first scheduled time strictly after `t`, or null when there is none (or the rule is not
 *  one snapvol accepts). */
export function nextRunAfter(rule: CreateRule | undefined, t: number): number | null {
  if (!rule) return null;
  if (rule.CronExpression) {
    const c = parseCron(rule.CronExpression);
    if (!c) return null;
    const times = cronTimesOfDay(c);
    if (times.length === 0) return null;
    let day = floorDiv(t, kDay);
    for (let i = 0; i < 366 * 9; i++, day++) {
      if (!cronDayMatches(c, day)) continue;
      for (const off of times) if (day * kDay + off > t) return day * kDay + off;
    }
    return null;
  }
  const hours = rule.Interval;
  if (!hours || rule.IntervalUnit !== "HOURS") return null;
  const timeOfDay = parseHhMm(rule.Times?.[0]);
  if (timeOfDay === null) return null;
  const period = hours * kHour;
  const offset = (timeOfDay * kMinute) % period;
  const latest = floorDiv(t - offset, period) * period + offset; // at or before t
  return latest + period;
}

/** The retention cutoff at `now` of an age rule (snapshots that started before it may go). */
export function retainCutoff(rule: RetainRule, now: number): number | null {
  if (rule.Count || !rule.Interval) return null;
  const n = rule.Interval;
  if (rule.IntervalUnit === "DAYS") return now - n * kDay;
  if (rule.IntervalUnit === "WEEKS") return now - n * 7 * kDay;
  const months = rule.IntervalUnit === "MONTHS" ? n : rule.IntervalUnit === "YEARS" ? n * 12 : null;
  if (months === null) return null;
  const d = new Date(now);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth() - months;
  const target = new Date(Date.UTC(y, m, 1));
  const lastDay = new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0)).getUTCDate();
  const day = Math.min(d.getUTCDate(), lastDay);
  const inDay = now - floorDiv(now, kDay) * kDay;
  return Date.UTC(target.getUTCFullYear(), target.getUTCMonth(), day) + inDay;
}

export interface RetentionCandidate {
  snapshot: Snapshot;
  /** Why it stays although the rule would delete it (locked, a restore reads it), if it does. */
  keptBecause?: string;
}

/** The snapshots the retention rule deletes after the run at `runAt`, assuming each targeted
 *  volume's new snapshot of that run completes. `made` are the policy's completed snapshots
 *  (any schedule); `targetVolumes` the volumes the run will snapshot. */
export function retentionPreview(opts: {
  scheduleName: string;
  retain: RetainRule | undefined;
  made: Snapshot[];
  targetVolumes: Set<string>;
  runAt: number;
  locked: Map<string, string>;
  readByRestore: Set<string>;
}): RetentionCandidate[] {
  const r = opts.retain;
  if (!r) return [];
  const byVolume = new Map<string, Snapshot[]>();
  for (const s of opts.made) {
    if (s.status !== "completed" || !opts.targetVolumes.has(s.volumeId)) continue;
    if (s.tags.find((t) => t.key === kScheduleTag)?.value !== opts.scheduleName) continue;
    byVolume.set(s.volumeId, [...(byVolume.get(s.volumeId) ?? []), s]);
  }
  const cutoff = retainCutoff(r, opts.runAt);
  const out: RetentionCandidate[] = [];
  for (const list of byVolume.values()) {
    list.sort((a, b) => {
      const ta = Date.parse(a.startTime);
      const tb = Date.parse(b.startTime);
      if (ta !== tb) return tb - ta;
      return a.snapshotId < b.snapshotId ? 1 : -1;
    });
    // After the run its new snapshot is first: existing snapshot j sits at j + 1.
    list.forEach((s, j) => {
      const i = j + 1;
      const expired = r.Count ? i >= r.Count : cutoff !== null && Date.parse(s.startTime) < cutoff;
      if (!expired) return;
      const lock = opts.locked.get(s.snapshotId);
      if (lock) out.push({ snapshot: s, keptBecause: `locked (${lock})` });
      else if (opts.readByRestore.has(s.snapshotId)) out.push({ snapshot: s, keptBecause: "a restore is reading it" });
      else out.push({ snapshot: s });
    });
  }
  return out.sort((a, b) => Date.parse(a.snapshot.startTime) - Date.parse(b.snapshot.startTime));
}

/** "hh:mm" of a UTC time of day. */
export function hhmm(minutes: number): string {
  return `${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;
}

export { parseHhMm };
