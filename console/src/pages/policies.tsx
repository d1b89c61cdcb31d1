// Lifecycle policies (the DLM API): each policy's schedule, when it runs next and which
// snapshots its retention rule deletes then (computed as snapvold's scheduler does: see
// policy_schedule.ts); create, edit and delete (policy_editor.tsx); the policy's runs, newest
// first, sortable.

import { useState } from "preact/hooks";

import { dlmTime, getPolicy, listPolicies, listRuns, type Policy, type PolicyRun, type Schedule } from "../api/dlm";
import { describeInstances, describeSnapshots, describeVolumes, ec2, childText, items, tagValue, type Snapshot } from "../api/ec2";
import type { Credentials } from "../api/session";
import { useSession } from "../context";
import { useNow } from "../time";
import { matchesSearch, SearchBox } from "../list_view";
import { ErrorNote, ListTable, StateBadge, Time, useLoader, useReloadWhile } from "../ui";
import { fetchInitialization } from "./details_common";
import { DeletePolicyDialog, PolicyEditorDialog } from "./policy_editor";
import { kPolicyIdTag, nextRunAfter, retentionPreview, type RetentionCandidate } from "./policy_schedule";

const kDefaultPolicyTag = "snapvol:default-policy";

function scheduleText(s: Schedule | undefined): string {
  const c = s?.CreateRule;
  if (!c) return "—";
  if (c.CronExpression) return `cron ${c.CronExpression} (UTC)`;
  const every = c.Interval && c.IntervalUnit ? `every ${c.Interval} ${c.IntervalUnit.toLowerCase()}` : "";
  const at = c.Times?.length ? `at ${c.Times.join(", ")} UTC` : "";
  return [every, at].filter(Boolean).join(" ") || "—";
}

function retentionText(s: Schedule | undefined): string {
  const r = s?.RetainRule;
  if (!r) return "—";
  if (r.Count) return `keep ${r.Count}`;
  if (r.Interval && r.IntervalUnit) return `keep ${r.Interval} ${r.IntervalUnit.toLowerCase()}`;
  return "—";
}

const isDefault = (p: Policy) => p.Tags?.[kDefaultPolicyTag] === "true";

/** Every page of DescribeSnapshots for the completed snapshots a policy made. */
async function snapshotsMadeBy(creds: Credentials, policyId: string): Promise<Snapshot[]> {
  const out: Snapshot[] = [];
  let token: string | undefined;
  for (let pages = 0; pages < 100; pages++) {
    const page = await describeSnapshots(creds, { owner: "", tagKey: kPolicyIdTag, tagValue: policyId, volumeId: "", state: "completed" }, 1000, token);
    out.push(...page.snapshots);
    if (!page.nextToken) break;
    token = page.nextToken;
  }
  return out;
}

/** Snapshot id → lock state, for locks that still hold (DescribeLockedSnapshots, all pages). */
async function heldLocks(creds: Credentials): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let token: string | undefined;
  for (let pages = 0; pages < 100; pages++) {
    const root = await ec2(creds, "DescribeLockedSnapshots", { MaxResults: "1000", NextToken: token });
    for (const el of items(root, "snapshotSet")) {
      const state = childText(el, "lockState");
      if (state && state !== "expired") out.set(childText(el, "snapshotId"), state);
    }
    token = childText(root, "nextToken") || undefined;
    if (!token) break;
  }
  return out;
}

interface PreviewContext {
  made: Map<string, Snapshot[]>;
  /** policy id → the volumes its next run snapshots */
  targets: Map<string, Set<string>>;
  locked: Map<string, string>;
  readByRestore: Set<string>;
}

async function loadPreviewContext(creds: Credentials, policies: Policy[]): Promise<PreviewContext> {
  const [volumes, instances, locked, madeLists] = await Promise.all([
    describeVolumes(creds),
    policies.some((p) => p.PolicyDetails?.ResourceTypes?.[0] === "INSTANCE") ? describeInstances(creds) : Promise.resolve([]),
    heldLocks(creds),
    Promise.all(policies.map((p) => snapshotsMadeBy(creds, p.PolicyId))),
  ]);
  const usable = volumes.filter((v) => v.status !== "creating" && v.status !== "error");
  const targets = new Map<string, Set<string>>();
  for (const p of policies) {
    const want = p.PolicyDetails?.TargetTags ?? [];
    const hit = (tags: { key: string; value: string }[]) =>
      want.length === 0 || want.some((w) => tags.some((t) => t.key === w.Key && t.value === w.Value));
    const set = new Set<string>();
    if (p.PolicyDetails?.ResourceTypes?.[0] === "INSTANCE") {
      const excludeBoot = (p.PolicyDetails?.Parameters as { ExcludeBootVolume?: boolean } | undefined)?.ExcludeBootVolume === true;
      for (const inst of instances) {
        // The scheduler matches an instance's targets on its name only.
        if (!hit([{ key: "Name", value: tagValue(inst.tags, "Name") }])) continue;
        for (const v of usable)
          for (const a of v.attachments)
            if (a.instanceId === inst.instanceId && !(excludeBoot && a.device === inst.rootDeviceName)) set.add(v.volumeId);
      }
    } else {
      for (const v of usable) if (hit(v.tags)) set.add(v.volumeId);
    }
    targets.set(p.PolicyId, set);
  }
  const made = new Map<string, Snapshot[]>();
  policies.forEach((p, i) => made.set(p.PolicyId, madeLists[i]));
  // As the scheduler's ReadsFromItsSnapshot: a restored volume still being written or still
  // loading blocks from its snapshot (initialization-state "initializing").
  const restored = volumes.filter((v) => v.snapshotId);
  const init = restored.length > 0 ? await fetchInitialization(creds, restored.map((v) => v.volumeId)) : new Map();
  const readByRestore = new Set(
    restored.filter((v) => v.status === "creating" || init.get(v.volumeId)?.state === "initializing").map((v) => v.snapshotId),
  );
  return { made, targets, locked, readByRestore };
}

type Dialog = { kind: "create" } | { kind: "edit"; policy: Policy } | { kind: "delete"; policy: Policy } | null;

export function PoliciesPage() {
  const { creds } = useSession();
  // DLM's list has no schedules: fetch each policy for its details.
  const policies = useLoader(async () => {
    const list = await listPolicies(creds);
    return Promise.all(list.map((p) => getPolicy(creds, p.PolicyId)));
  }, [creds]);
  const context = useLoader(
    () => (policies.data ? loadPreviewContext(creds, policies.data) : Promise.resolve(null)),
    [creds, policies.data],
  );
  const now = useNow();
  const [dialog, setDialog] = useState<Dialog>(null);
  const [showRuns, setShowRuns] = useState<string>("");
  const [notice, setNotice] = useState("");
  const done = (msg: string) => {
    setDialog(null);
    setNotice(msg);
    policies.reload();
  };

  return (
    <section aria-labelledby="policies-title">
      <div class="page-head">
        <h1 id="policies-title">Lifecycle policies</h1>
        <div class="buttons">
          <button type="button" onClick={() => setDialog({ kind: "create" })}>
            Create policy
          </button>
          <button type="button" class="secondary" onClick={policies.reload}>
            Refresh
          </button>
        </div>
      </div>
      <p class="hint">
        Policies take snapshots on a schedule (set in UTC; next runs shown in your time setting) and keep the newest ones.
        Retention runs after each run, once a volume’s new snapshot has completed.
      </p>
      <p role="status" class="notice-line" data-testid="policies-notice">
        {notice}
      </p>
      <ErrorNote error={policies.error} />
      <ErrorNote error={context.error} />
      <ListTable
        loading={policies.loading && !policies.data}
        rows={policies.data}
        loadingText="Loading policies…"
        empty="No lifecycle policies."
        label="Lifecycle policies"
        columns={["Policy", "State", "Targets", "Schedule", "Next run", "Retention", "Modified", "Actions"]}
      >
        {(policies.data ?? []).map((p) => {
          const schedules = p.PolicyDetails?.Schedules ?? [];
          const enabled = p.State === "ENABLED";
          return (
            <tr key={p.PolicyId} data-policy-id={p.PolicyId}>
              <td data-label="Policy">
                <code>{p.PolicyId}</code>
                {p.Description ? <div class="sub">{p.Description}</div> : null}
                {isDefault(p) ? <div class="sub">the account’s default policy</div> : null}
              </td>
              <td data-label="State">
                <StateBadge state={(p.State ?? "").toLowerCase()} />
                {p.StatusMessage && p.StatusMessage !== p.State ? <div class="sub">{p.StatusMessage}</div> : null}
              </td>
              <td data-label="Targets">
                {(p.PolicyDetails?.TargetTags ?? []).map((t) => `${t.Key}=${t.Value}`).join(", ") || "every volume"}
              </td>
              <td data-label="Schedule">
                {schedules.map((s) => (
                  <div key={s.Name}>
                    {scheduleText(s)}
                    {schedules.length > 1 || s.Name ? <div class="sub">schedule {s.Name}</div> : null}
                  </div>
                ))}
              </td>
              <td data-label="Next run">
                {schedules.map((s) => {
                  const next = enabled ? nextRunAfter(s.CreateRule, now) : null;
                  return (
                    <div key={s.Name} data-next-run={next !== null ? new Date(next).toISOString() : ""}>
                      {!enabled ? <span class="muted">none: the policy is disabled</span> : null}
                      {enabled && next !== null ? <Time iso={new Date(next).toISOString()} withRelative /> : null}
                      {enabled && next === null ? <span class="muted">never (the schedule has no future time)</span> : null}
                    </div>
                  );
                })}
              </td>
              <td data-label="Retention">
                {schedules.map((s) => {
                  const next = enabled ? nextRunAfter(s.CreateRule, now) : null;
                  return (
                    <div key={s.Name}>
                      {retentionText(s)}
                      {next !== null ? <Preview policy={p} schedule={s} runAt={next} context={context.data} loading={context.loading} /> : null}
                    </div>
                  );
                })}
              </td>
              <td data-label="Modified">
                <Time iso={dlmTime(p.DateModified)} />
              </td>
              <td data-label="Actions" class="actions">
                <button type="button" class="secondary" onClick={() => setDialog({ kind: "edit", policy: p })} aria-label={`Edit ${p.PolicyId}`}>
                  Edit
                </button>
                <button
                  type="button"
                  class="secondary"
                  aria-pressed={showRuns === p.PolicyId}
                  onClick={() => setShowRuns(showRuns === p.PolicyId ? "" : p.PolicyId)}
                  aria-label={`Runs of ${p.PolicyId}`}
                >
                  Runs
                </button>
                <button type="button" class="secondary" onClick={() => setDialog({ kind: "delete", policy: p })} aria-label={`Delete ${p.PolicyId}`}>
                  Delete
                </button>
              </td>
            </tr>
          );
        })}
      </ListTable>
      {showRuns ? <Runs policyId={showRuns} /> : null}
      {dialog?.kind === "create" ? <PolicyEditorDialog onClose={() => setDialog(null)} onDone={done} /> : null}
      {dialog?.kind === "edit" ? <PolicyEditorDialog policy={dialog.policy} onClose={() => setDialog(null)} onDone={done} /> : null}
      {dialog?.kind === "delete" ? (
        <DeletePolicyDialog policy={dialog.policy} isDefault={isDefault(dialog.policy)} onClose={() => setDialog(null)} onDone={done} />
      ) : null}
    </section>
  );
}

/** Which snapshots the schedule's retention deletes after its next run. */
function Preview(props: { policy: Policy; schedule: Schedule; runAt: number; context: PreviewContext | null | undefined; loading: boolean }) {
  const c = props.context;
  if (!c) return props.loading ? <div class="sub" role="status">Working out what the next run deletes…</div> : null;
  const list: RetentionCandidate[] = retentionPreview({
    scheduleName: props.schedule.Name ?? "",
    retain: props.schedule.RetainRule,
    made: c.made.get(props.policy.PolicyId) ?? [],
    targetVolumes: c.targets.get(props.policy.PolicyId) ?? new Set(),
    runAt: props.runAt,
    locked: c.locked,
    readByRestore: c.readByRestore,
  });
  const deleted = list.filter((x) => !x.keptBecause);
  const kept = list.filter((x) => x.keptBecause);
  return (
    <div class="sub retention-preview" data-retention-preview={deleted.map((x) => x.snapshot.snapshotId).join(" ")}>
      {deleted.length === 0 ? <span>The next run deletes no snapshot.</span> : <span>The next run deletes:</span>}
      {deleted.length > 0 ? (
        <ul class="plain">
          {deleted.map((x) => (
            <li key={x.snapshot.snapshotId}>
              <a href={`#/snapshot/${encodeURIComponent(x.snapshot.snapshotId)}`}>
                <code>{x.snapshot.snapshotId}</code>
              </a>{" "}
              of <code>{x.snapshot.volumeId}</code>, from <Time iso={x.snapshot.startTime} absolute />
            </li>
          ))}
        </ul>
      ) : null}
      {kept.length > 0 ? (
        <ul class="plain">
          {kept.map((x) => (
            <li key={x.snapshot.snapshotId}>
              <code>{x.snapshot.snapshotId}</code> stays: {x.keptBecause}
            </li>
          ))}
        </ul>
      ) : null}
      {deleted.length > 0 ? <span>(once each volume’s new snapshot has completed)</span> : null}
    </div>
  );
}

const kRunsShown = 50;
const kRunsPollMs = 5000;

type RunKey = "ScheduledTime" | "StartTime" | "EndTime" | "State" | "ScheduleName";
const kRunColumns: { key: RunKey | null; title: string }[] = [
  { key: "ScheduledTime", title: "Scheduled" },
  { key: "ScheduleName", title: "Schedule" },
  { key: "State", title: "State" },
  { key: "StartTime", title: "Started" },
  { key: "EndTime", title: "Ended" },
  { key: null, title: "Snapshots" },
  { key: null, title: "Message" },
];

function runValue(r: PolicyRun, key: RunKey): string {
  if (key === "State" || key === "ScheduleName") return r[key] ?? "";
  return dlmTime(r[key]);
}

/** What the runs search box looks in: what a row shows, times as stored (UTC ISO-8601). */
function runFields(r: PolicyRun): string[] {
  return [r.ScheduleName ?? "", r.State ?? "", r.Message ?? "", dlmTime(r.ScheduledTime), dlmTime(r.StartTime), dlmTime(r.EndTime)];
}

/** A policy's last runs and their outcome, newest first unless another order is chosen;
 *  asked again every few seconds while shown, so a run that starts or ends appears. */
function Runs({ policyId }: { policyId: string }) {
  const { creds } = useSession();
  const runs = useLoader(() => listRuns(creds, policyId, kRunsShown), [creds, policyId]);
  const [sort, setSort] = useState<{ key: RunKey; desc: boolean }>({ key: "ScheduledTime", desc: true });
  const [search, setSearch] = useState("");
  useReloadWhile(runs, true, kRunsPollMs);
  const all = runs.data ?? [];
  const matching = all.filter((r) => matchesSearch(search, runFields(r)));
  const sorted = [...matching].sort((a, b) => {
    const x = runValue(a, sort.key);
    const y = runValue(b, sort.key);
    const c = x < y ? -1 : x > y ? 1 : 0;
    return sort.desc ? -c : c;
  });
  const toggle = (key: RunKey) => setSort((s) => (s.key === key ? { key, desc: !s.desc } : { key, desc: key !== "State" && key !== "ScheduleName" }));
  return (
    <section class="runs" aria-labelledby="runs-title">
      <h2 id="runs-title">Last runs of {policyId}</h2>
      <ErrorNote error={runs.error} />
      {runs.loading && !runs.data ? <p role="status">Loading runs…</p> : null}
      {runs.data && runs.data.length === 0 ? <p class="empty">No runs yet: the policy runs at its next scheduled time.</p> : null}
      {all.length > 0 ? (
        <SearchBox
          id="runs-search"
          label="Search runs"
          value={search}
          onInput={setSearch}
          hint="Finds the text anywhere (upper and lower case alike) in a run's schedule name, state, message and its scheduled, start and end times as stored (UTC, e.g. 2026-12-04T02:00)."
          shown={matching.length}
          total={all.length}
        />
      ) : null}
      {all.length > 0 && matching.length === 0 ? <p class="empty">No run matches “{search}”.</p> : null}
      {matching.length > 0 ? (
        <table class="list" aria-label={`Runs of ${policyId}`}>
          <thead>
            <tr>
              {kRunColumns.map((col) => {
                const active = col.key !== null && sort.key === col.key;
                return (
                  <th key={col.title} scope="col" aria-sort={active ? (sort.desc ? "descending" : "ascending") : undefined}>
                    {col.key ? (
                      <button type="button" class="sort" onClick={() => toggle(col.key!)}>
                        {col.title}
                        <span aria-hidden="true">{active ? (sort.desc ? " ▼" : " ▲") : ""}</span>
                      </button>
                    ) : (
                      col.title
                    )}
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>
            {sorted.map((r, i) => (
              <tr key={`${r.ScheduleName}-${String(r.ScheduledTime)}-${i}`} data-run-state={r.State} data-scheduled={dlmTime(r.ScheduledTime)}>
                <td data-label="Scheduled">
                  <Time iso={dlmTime(r.ScheduledTime)} />
                </td>
                <td data-label="Schedule">{r.ScheduleName || <span class="muted">—</span>}</td>
                <td data-label="State">
                  <StateBadge state={r.State ?? ""} />
                </td>
                <td data-label="Started">
                  <Time iso={dlmTime(r.StartTime)} />
                </td>
                <td data-label="Ended">
                  <Time iso={dlmTime(r.EndTime)} />
                </td>
                <td data-label="Snapshots">
                  {r.SnapshotsCreated ?? 0} created, {r.SnapshotsFailed ?? 0} failed, {r.SnapshotsDeleted ?? 0} deleted
                  {r.MissedRuns ? <div class="sub">{r.MissedRuns} missed while the service was down</div> : null}
                </td>
                <td data-label="Message" class="wrap">
                  {r.Message || <span class="muted">—</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
