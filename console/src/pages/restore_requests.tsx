// Restore requests: members follow their own; administrators approve or reject pending ones
// (approval restores into a new volume of the member's account, shown here as it fills).

import { useEffect, useRef, useState } from "preact/hooks";

import { AccountName } from "../account_names";
import { describeVolumes, type Volume } from "../api/ec2";
import { decideRestoreRequest, listRestoreRequests, type RestoreRequest } from "../api/snapvol";
import { useSession } from "../context";
import { fieldId, LimitedText } from "../fields";
import { kMaxReasonChars, lengthError } from "../limits";
import { DialogActions, ErrorNote, ListTable, Modal, StateBadge, Time, useAction, useLoader } from "../ui";

const kPollMs = 1000;

export function RestoreRequestsPage() {
  const { creds, me } = useSession();
  const [stateFilter, setStateFilter] = useState("");
  const [deciding, setDeciding] = useState<{ request: RestoreRequest; approve: boolean } | null>(null);
  const requests = useLoader(() => listRestoreRequests(creds), [creds]);
  const volumeIds = (requests.data ?? []).map((r) => r.volumeId).filter((v): v is string => !!v);
  const volumes = useLoader<Volume[]>(
    () => (volumeIds.length ? describeVolumes(creds, volumeIds) : Promise.resolve([])),
    [creds, volumeIds.join(",")],
  );
  // Restored volumes are `creating` until their data is written: follow them until they settle.
  const anyCreating = volumes.data?.some((v) => v.status === "creating") ?? false;
  useEffect(() => {
    if (!anyCreating || volumes.loading) return;
    const t = window.setTimeout(volumes.reload, kPollMs);
    return () => window.clearTimeout(t);
  }, [anyCreating, volumes.loading, volumes.data]);

  const shown = (requests.data ?? []).filter((r) => !stateFilter || r.state === stateFilter);
  const volume = (id: string | undefined) => volumes.data?.find((v) => v.volumeId === id);

  return (
    <section aria-labelledby="rr-title">
      <div class="page-head">
        <h1 id="rr-title">Restore requests</h1>
        <button type="button" class="secondary" onClick={requests.reload}>
          Refresh
        </button>
      </div>
      <p class="hint">
        {me.isAdmin
          ? "Requests from every team. Approving one restores the snapshot into a new volume of the team's account."
          : "Your team's requests. Restoring is for administrators: file a request from a snapshot's Restore button."}
      </p>
      <label class="inline">
        <span>State</span>
        <select value={stateFilter} onChange={(e) => setStateFilter(e.currentTarget.value)}>
          <option value="">Any</option>
          <option value="pending">pending</option>
          <option value="approved">approved</option>
          <option value="rejected">rejected</option>
        </select>
      </label>
      <ErrorNote error={requests.error} />
      <ErrorNote error={volumes.error} />
      <ListTable
        loading={requests.loading && !requests.data}
        rows={requests.data ? shown : undefined}
        loadingText="Loading restore requests…"
        empty="No restore requests."
        label="Restore requests"
        columns={["Request", "Snapshot", "Account", "Reason", "State", "Decision", "Restored volume", "Actions"]}
      >
        {shown.map((r) => {
          const v = volume(r.volumeId);
          return (
            <tr key={r.restoreRequestId} data-request-id={r.restoreRequestId} data-state={r.state}>
              <td data-label="Request">
                <code>{r.restoreRequestId}</code>
                <div class="sub">
                  <Time iso={r.requestedAt} />
                </div>
              </td>
              <td data-label="Snapshot">
                <code>{r.snapshotId}</code>
              </td>
              <td data-label="Account">
                <AccountName id={r.accountId} />
              </td>
              <td data-label="Reason">{r.reason || <span class="muted">—</span>}</td>
              <td data-label="State">
                <StateBadge state={r.state} />
              </td>
              <td data-label="Decision">
                {r.decidedAt ? (
                  <>
                    by <code>{r.decidedBy}</code> at <Time iso={r.decidedAt} />
                    {r.decisionReason ? <div class="sub">“{r.decisionReason}”</div> : null}
                  </>
                ) : (
                  <span class="muted">—</span>
                )}
              </td>
              <td data-label="Restored volume">
                {r.volumeId ? (
                  <span data-testid="restored-volume">
                    <code>{r.volumeId}</code> {v ? <StateBadge state={v.status} /> : null}
                  </span>
                ) : (
                  <span class="muted">—</span>
                )}
              </td>
              {me.isAdmin ? (
                <td data-label="Actions" class="actions">
                  {r.state === "pending" ? (
                    <>
                      <button type="button" onClick={() => setDeciding({ request: r, approve: true })} aria-label={`Approve ${r.restoreRequestId}`}>
                        Approve
                      </button>
                      <button type="button" class="danger" onClick={() => setDeciding({ request: r, approve: false })} aria-label={`Reject ${r.restoreRequestId}`}>
                        Reject
                      </button>
                    </>
                  ) : (
                    <span class="muted">decided</span>
                  )}
                </td>
              ) : null}
            </tr>
          );
        })}
      </ListTable>
      {deciding ? (
        <DecideDialog
          request={deciding.request}
          approve={deciding.approve}
          onClose={() => setDeciding(null)}
          onDone={() => {
            setDeciding(null);
            requests.reload();
          }}
        />
      ) : null}
    </section>
  );
}

function DecideDialog(props: { request: RestoreRequest; approve: boolean; onClose: () => void; onDone: () => void }) {
  const { creds } = useSession();
  const [reason, setReason] = useState("");
  const act = useAction();
  const verb = props.approve ? "Approve" : "Reject";
  const reasonError = lengthError("The reason", reason, kMaxReasonChars);
  const reasonId = useRef(fieldId("decision-reason")).current;
  const submit = async (e: Event) => {
    e.preventDefault();
    if (act.busy || reasonError) return;
    const r = await act.run(() => decideRestoreRequest(creds, props.request.restoreRequestId, props.approve, reason));
    if (r) props.onDone();
  };
  return (
    <Modal title={`${verb} ${props.request.restoreRequestId}`} onClose={props.onClose} busy={act.busy}>
      <form onSubmit={submit}>
        <p>
          Snapshot <code>{props.request.snapshotId}</code> of account <code>{props.request.accountId}</code>
          {props.request.reason ? `, because: “${props.request.reason}”` : ""}.
          {props.approve ? " Approving restores it into a new volume of that account." : ""}
        </p>
        <LimitedText
          id={reasonId}
          name="reason"
          label="Reason for the decision"
          multiline
          value={reason}
          max={kMaxReasonChars}
          error={reasonError}
          onInput={setReason}
        />
        <DialogActions act={act} label={verb} busyLabel="Sending…" onCancel={props.onClose} danger={!props.approve} />
      </form>
    </Modal>
  );
}
