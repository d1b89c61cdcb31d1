// Administrators: snapvold's maintenance jobs (GC, verification, restore drills) — their
// schedule, the recent runs with what each did, and buttons that queue a run now.

import { useState } from "preact/hooks";

import { type ApiError, asApiError } from "../api/errors";
import { type JobSchedule, listJobRuns, type MaintenanceRun, runJob } from "../api/snapvol";
import { useSession } from "../context";
import { ErrorNote, Time, useLoader } from "../ui";

function scheduleText(name: string, s: JobSchedule | undefined): string {
  if (!s) return `${name}: not run by this process`;
  if (!s.enabled) return `${name}: off`;
  const when = s.everySeconds ? `every ${s.everySeconds} s` : `daily at ${s.dailyAt} UTC`;
  if (s.perAccount) {
    const check = s.checkCommand?.length ? `, then \`${s.checkCommand.join(" ")}\`` : "";
    return `${name}: ${when}, ${s.perAccount} snapshot(s) per account restored in full${check}`;
  }
  const decode = `a full decode of every snapshot within ${s.periodDays} days`;
  const extra = !s.periodDays
    ? ""
    : s.mode === "quick+full"
      ? `, checksums of every snapshot each run and ${decode}`
      : `, ${decode}`;
  return `${name}: ${when}${extra}`;
}

function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

function outcome(r: MaintenanceRun): string {
  if (r.state === "queued" || r.state === "running") return "";
  if (r.state === "failed") return "failed";
  if (r.job === "gc") return `${bytes(r.bytesFreed ?? 0)} freed (${r.objectsDeleted ?? 0} objects)`;
  if (r.job === "drill") return `${r.snapshotsChecked ?? 0} snapshots restored`;
  return `${r.snapshotsChecked ?? 0} snapshots checked`;
}

export function JobsPage() {
  const { creds } = useSession();
  const runs = useLoader(() => listJobRuns(creds, 100), [creds]);
  const [asked, setAsked] = useState<string>("");
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const ask = async (job: "gc" | "verify" | "drill", mode?: "full" | "quick") => {
    setError(undefined);
    try {
      const run = await runJob(creds, job, mode);
      setAsked(`Queued ${job} run ${run.runId}.`);
      runs.reload();
    } catch (e) {
      setError(asApiError(e));
    }
  };
  return (
    <section aria-labelledby="jobs-title">
      <div class="page-head">
        <h1 id="jobs-title">Maintenance jobs</h1>
        <button type="button" class="secondary" onClick={runs.reload}>
          Refresh
        </button>
      </div>
      <p class="hint">
        {scheduleText("Garbage collection", runs.data?.schedule?.gc)}; {scheduleText("Verification", runs.data?.schedule?.verify)};{" "}
        {scheduleText("Restore drills", runs.data?.schedule?.drill)}.
      </p>
      <div class="buttons">
        <button type="button" onClick={() => ask("gc")}>
          Run GC now
        </button>
        <button type="button" onClick={() => ask("verify", "full")}>
          Verify every snapshot now
        </button>
        <button type="button" class="secondary" onClick={() => ask("verify", "quick")}>
          Quick verify (checksums)
        </button>
        <button type="button" class="secondary" onClick={() => ask("drill")}>
          Run a restore drill now
        </button>
      </div>
      {asked ? <p role="status">{asked}</p> : null}
      <ErrorNote error={error} />
      <ErrorNote error={runs.error} />
      {runs.loading && !runs.data ? <p role="status">Loading the runs…</p> : null}
      {runs.data && runs.data.runs.length === 0 ? <p class="empty">No runs yet.</p> : null}
      {runs.data && runs.data.runs.length > 0 ? (
        <table class="list" aria-label="Maintenance runs">
          <thead>
            <tr>
              <th scope="col">Run</th>
              <th scope="col">Job</th>
              <th scope="col">State</th>
              <th scope="col">Started</th>
              <th scope="col">Finished</th>
              <th scope="col">Outcome</th>
            </tr>
          </thead>
          <tbody>
            {runs.data.runs.map((r) => (
              <tr key={r.runId} data-run={r.runId} data-job={r.job} data-state={r.state}>
                <td data-label="Run">
                  {r.runId}
                  <div class="sub">{r.trigger}</div>
                </td>
                <td data-label="Job">
                  {r.job === "gc" ? "GC" : r.job === "drill" ? "Restore drill" : "Verify"}
                  {r.mode ? <span class="sub"> ({r.mode})</span> : null}
                </td>
                <td data-label="State">{r.state}</td>
                <td data-label="Started">{r.startedAt ? <Time iso={r.startedAt} /> : <span class="muted">—</span>}</td>
                <td data-label="Finished">{r.finishedAt ? <Time iso={r.finishedAt} /> : <span class="muted">—</span>}</td>
                <td data-label="Outcome">
                  {outcome(r)}
                  {r.damagedSnapshots && r.damagedSnapshots.length > 0 ? (
                    <div class="error-text">
                      {r.job === "drill" ? "Drill failed:" : "Damaged:"}{" "}
                      {r.damagedSnapshots.map((id) => (
                        <a key={id} href={`#/snapshot/${id}`}>
                          <code>{id}</code>{" "}
                        </a>
                      ))}
                    </div>
                  ) : null}
                  <div class="sub">{r.message}</div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
