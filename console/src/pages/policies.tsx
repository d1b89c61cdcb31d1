// Lifecycle policies (the DLM API): each policy's daily time (UTC) and retention, editable;
// the policy's last runs and their outcome.

import { useEffect, useState } from "preact/hooks";

import { dlmTime, getPolicy, listPolicies, listRuns, updatePolicy, type Policy, type Schedule } from "../api/dlm";
import { useSession } from "../context";
import { DialogActions, ErrorNote, ListTable, Modal, StateBadge, Time, useAction, useLoader } from "../ui";

function scheduleText(s: Schedule | undefined): string {
  const c = s?.CreateRule;
  if (!c) return "—";
  if (c.CronExpression) return `cron ${c.CronExpression}`;
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

export function PoliciesPage() {
  const { creds } = useSession();
  // DLM's list has no schedules: fetch each policy for its details.
  const policies = useLoader(async () => {
    const list = await listPolicies(creds);
    return Promise.all(list.map((p) => getPolicy(creds, p.PolicyId)));
  }, [creds]);
  const [editing, setEditing] = useState<Policy | null>(null);
  const [showRuns, setShowRuns] = useState<string>("");

  return (
    <section aria-labelledby="policies-title">
      <div class="page-head">
        <h1 id="policies-title">Lifecycle policies</h1>
        <button type="button" class="secondary" onClick={policies.reload}>
          Refresh
        </button>
      </div>
      <p class="hint">Policies take snapshots on a schedule (times in UTC) and keep the newest ones.</p>
      <ErrorNote error={policies.error} />
      <ListTable
        loading={policies.loading && !policies.data}
        rows={policies.data}
        loadingText="Loading policies…"
        empty="No lifecycle policies."
        label="Lifecycle policies"
        columns={["Policy", "State", "Targets", "Schedule", "Retention", "Modified", "Actions"]}
      >
        {(policies.data ?? []).map((p) => {
          const s = p.PolicyDetails?.Schedules?.[0];
          return (
            <tr key={p.PolicyId} data-policy-id={p.PolicyId}>
              <td data-label="Policy">
                <code>{p.PolicyId}</code>
                {p.Description ? <div class="sub">{p.Description}</div> : null}
              </td>
              <td data-label="State">
                <StateBadge state={(p.State ?? "").toLowerCase()} />
                {p.StatusMessage && p.StatusMessage !== p.State ? <div class="sub">{p.StatusMessage}</div> : null}
              </td>
              <td data-label="Targets">
                {(p.PolicyDetails?.TargetTags ?? []).map((t) => `${t.Key}=${t.Value}`).join(", ") || "every volume"}
              </td>
              <td data-label="Schedule">{scheduleText(s)}</td>
              <td data-label="Retention">{retentionText(s)}</td>
              <td data-label="Modified">
                <Time iso={dlmTime(p.DateModified)} />
              </td>
              <td data-label="Actions" class="actions">
                <button type="button" class="secondary" onClick={() => setEditing(p)} aria-label={`Edit ${p.PolicyId}`}>
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
              </td>
            </tr>
          );
        })}
      </ListTable>
      {showRuns ? <Runs policyId={showRuns} /> : null}
      {editing ? (
        <EditPolicyDialog
          policy={editing}
          onClose={() => setEditing(null)}
          onDone={() => {
            setEditing(null);
            policies.reload();
          }}
        />
      ) : null}
    </section>
  );
}

function EditPolicyDialog(props: { policy: Policy; onClose: () => void; onDone: () => void }) {
  const { creds } = useSession();
  const p = props.policy;
  const schedule = p.PolicyDetails?.Schedules?.[0];
  const [time, setTime] = useState(schedule?.CreateRule?.Times?.[0] ?? "02:00");
  const [count, setCount] = useState(String(schedule?.RetainRule?.Count ?? 7));
  const [enabled, setEnabled] = useState((p.State ?? "ENABLED") === "ENABLED");
  const [description, setDescription] = useState(p.Description ?? "");
  const act = useAction();
  const usesTimes = !schedule?.CreateRule?.CronExpression;
  const usesCount = schedule?.RetainRule?.Count !== undefined || !schedule?.RetainRule;

  const submit = async (e: Event) => {
    e.preventDefault();
    // UpdateLifecyclePolicy replaces PolicyDetails whole: send it back with the two edits.
    const schedules = [...(p.PolicyDetails?.Schedules ?? [])];
    if (schedules.length > 0) {
      const first = { ...schedules[0] };
      if (usesTimes) first.CreateRule = { ...first.CreateRule, Times: [time] };
      if (usesCount) first.RetainRule = { Count: Number(count) };
      schedules[0] = first;
    }
    const ok = await act.run(() =>
      updatePolicy(creds, p.PolicyId, {
        State: enabled ? "ENABLED" : "DISABLED",
        Description: description,
        PolicyDetails: p.PolicyDetails ? { ...p.PolicyDetails, Schedules: schedules } : undefined,
      }),
    );
    if (ok !== undefined) props.onDone();
  };
  return (
    <Modal title={`Edit ${p.PolicyId}`} onClose={props.onClose}>
      <form onSubmit={submit}>
        <label>
          <span>Description</span>
          <input value={description} maxLength={500} onInput={(e) => setDescription(e.currentTarget.value)} />
        </label>
        {usesTimes ? (
          <label>
            <span>Daily time (UTC)</span>
            <input
              required
              pattern="([01][0-9]|2[0-3]):[0-5][0-9]"
              placeholder="hh:mm"
              title="24-hour time, hh:mm"
              inputMode="numeric"
              value={time}
              onInput={(e) => setTime(e.currentTarget.value)}
            />
          </label>
        ) : (
          <p>Schedule: {scheduleText(schedule)} (edit cron schedules with the API).</p>
        )}
        {usesCount ? (
          <label>
            <span>Snapshots to keep</span>
            <input type="number" min={1} max={1000} required value={count} onInput={(e) => setCount(e.currentTarget.value)} />
          </label>
        ) : (
          <p>Retention: {retentionText(schedule)}.</p>
        )}
        <label class="check">
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.currentTarget.checked)} />
          <span>Enabled</span>
        </label>
        <DialogActions act={act} label="Save policy" busyLabel="Saving…" onCancel={props.onClose} />
      </form>
    </Modal>
  );
}

const kRunsShown = 20;
const kRunsPollMs = 5000;

/** A policy's last runs and their outcome; asked again every few seconds while shown, so a
 *  run that starts or ends appears without a reload. */
function Runs({ policyId }: { policyId: string }) {
  const { creds } = useSession();
  const runs = useLoader(() => listRuns(creds, policyId, kRunsShown), [creds, policyId]);
  useEffect(() => {
    if (runs.loading) return;
    const t = window.setTimeout(runs.reload, kRunsPollMs);
    return () => window.clearTimeout(t);
  }, [runs.loading, runs.data]);
  return (
    <section class="runs" aria-labelledby="runs-title">
      <h2 id="runs-title">Last runs of {policyId}</h2>
      <ErrorNote error={runs.error} />
      <ListTable
        loading={runs.loading && !runs.data}
        rows={runs.data}
        loadingText="Loading runs…"
        empty="No runs yet: the policy runs at its next scheduled time."
        label={`Runs of ${policyId}`}
        columns={["Scheduled", "Schedule", "State", "Started", "Ended", "Snapshots", "Message"]}
      >
        {(runs.data ?? []).map((r, i) => (
          <tr key={`${r.ScheduleName}-${String(r.ScheduledTime)}-${i}`} data-run-state={r.State}>
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
            <td data-label="Message">{r.Message || <span class="muted">—</span>}</td>
          </tr>
        ))}
      </ListTable>
    </section>
  );
}
