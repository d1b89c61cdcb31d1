// Administrators: the audit log, newest first as the server returns it.

import { useState } from "preact/hooks";

import { listAudit } from "../api/snapvol";
import { useSession } from "../context";
import { ErrorNote, Time, useLoader } from "../ui";

const kLimits = [50, 100, 500];

export function AuditPage() {
  const { creds } = useSession();
  const [limit, setLimit] = useState(100);
  const [action, setAction] = useState("");
  const [problemsOnly, setProblemsOnly] = useState(false);
  const events = useLoader(() => listAudit(creds, limit), [creds, limit]);
  const shown = (events.data?.events ?? []).filter(
    (e) => (!action || e.action.toLowerCase().includes(action.toLowerCase())) && (!problemsOnly || e.code !== ""),
  );
  return (
    <section aria-labelledby="audit-title">
      <div class="page-head">
        <h1 id="audit-title">Audit log</h1>
        <button type="button" class="secondary" onClick={events.reload}>
          Refresh
        </button>
      </div>
      <div class="filters">
        <label>
          <span>Events</span>
          <select value={String(limit)} onChange={(e) => setLimit(Number(e.currentTarget.value))}>
            {kLimits.map((n) => (
              <option key={n} value={String(n)}>
                last {n}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span>Action contains</span>
          <input value={action} onInput={(e) => setAction(e.currentTarget.value)} />
        </label>
        <label class="check">
          <input type="checkbox" checked={problemsOnly} onChange={(e) => setProblemsOnly(e.currentTarget.checked)} />
          <span>Only refusals and errors</span>
        </label>
      </div>
      <ErrorNote error={events.error} />
      {events.loading && !events.data ? <p role="status">Loading the audit log…</p> : null}
      <p class="hint" data-testid="audit-host">
        Newest first.
        {events.data?.host
          ? ` The log of host ${events.data.host.name} (${events.data.host.hostId}), the one that answered: each host keeps its own.`
          : null}
      </p>
      {events.data && shown.length === 0 ? <p class="empty">No events.</p> : null}
      {shown.length > 0 ? (
        <table class="list" aria-label="Audit events">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Caller</th>
              <th scope="col">Action</th>
              <th scope="col">Decision</th>
              <th scope="col">Result</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((e, i) => (
              <tr key={i} data-action={e.action} data-decision={e.decision}>
                <td data-label="Time">
                  <Time iso={e.time} />
                </td>
                <td data-label="Caller">
                  <code>{e.accountId || "—"}</code>
                  {e.user ? <div class="sub">{e.user}</div> : null}
                </td>
                <td data-label="Action">
                  {e.action || <span class="muted">—</span>}
                  {e.resource ? (
                    <div class="sub">
                      <code>{e.resource}</code>
                    </div>
                  ) : null}
                </td>
                <td data-label="Decision">{e.decision}</td>
                <td data-label="Result">
                  {e.code || "OK"}
                  {e.status ? <span class="sub"> (HTTP {e.status})</span> : null}
                  {e.message ? <div class="sub">{e.message}</div> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
