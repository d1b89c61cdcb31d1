// Restore requests: members follow their own; administrators see every account's (or one
// account's), and approve or reject pending ones from each row's menu (approval restores into
// a new volume of the member's account, shown here as it fills). Sortable, newest first; searchable.

import { useRef, useState } from "preact/hooks";

import { AccountName, useAccountDirectory } from "../account_names";
import { describeVolumes, type Volume } from "../api/ec2";
import { decideRestoreRequest, listRestoreRequests, type RestoreRequest } from "../api/snapvol";
import { useSession } from "../context";
import { fieldId, LimitedText } from "../fields";
import { kMaxReasonChars, lengthError } from "../limits";
import { AccountSwitcher, CopyableId, DataTable, matchesSearch, SearchBox, sortRows, SortSelect, timeValue, Truncated, useSort, type Column } from "../list_view";
import { RowMenu } from "../row_menu";
import { DialogActions, ErrorNote, Modal, Progress, StateBadge, Time, useAction, useLoader, useReloadWhile } from "../ui";

const kPollMs = 1000;

export function RestoreRequestsPage() {
  const { creds, me } = useSession();
  const { names } = useAccountDirectory();
  const [stateFilter, setStateFilter] = useState("");
  const [account, setAccount] = useState("all");
  const [search, setSearch] = useState("");
  const { sort, setSort, toggle } = useSort({ column: "requested", dir: "descending" }, ["requested", "decided"]);
  const [deciding, setDeciding] = useState<{ request: RestoreRequest; approve: boolean } | null>(null);
  const requests = useLoader(() => listRestoreRequests(creds), [creds]);
  const volumeIds = (requests.data ?? [])
    .filter((r) => r.restoreType !== "in-place")
    .map((r) => r.volumeId)
    .filter((v): v is string => !!v);
  const volumes = useLoader<Volume[]>(
    () => (volumeIds.length ? describeVolumes(creds, volumeIds) : Promise.resolve([])),
    [creds, volumeIds.join(",")],
  );
  // Restored volumes are `creating` until their data is written: follow them until they settle.
  const anyCreating = volumes.data?.some((v) => v.status === "creating") ?? false;
  useReloadWhile(volumes, anyCreating, kPollMs);
  // Approved in-place requests run as rollback tasks: follow them until they finish.
  const anyTaskRunning = requests.data?.some((r) => r.taskState === "pending" || r.taskState === "in-progress") ?? false;
  useReloadWhile(requests, anyTaskRunning, kPollMs);

  const volume = (id: string | undefined) => volumes.data?.find((v) => v.volumeId === id);
  const columns: Column<RestoreRequest>[] = [
    {
      id: "request",
      label: "Request",
      sort: (r) => r.restoreRequestId,
      render: (r) => <CopyableId id={r.restoreRequestId} />,
    },
    { id: "requested", label: "Requested", sort: (r) => timeValue(r.requestedAt), render: (r) => <Time iso={r.requestedAt} /> },
    { id: "snapshot", label: "Snapshot", sort: (r) => r.snapshotId, render: (r) => <code>{r.snapshotId}</code> },
    { id: "account", label: "Account", sort: (r) => names.get(r.accountId) ?? r.accountId, render: (r) => <AccountName id={r.accountId} /> },
    { id: "reason", label: "Reason", sort: (r) => r.reason, render: (r) => (r.reason ? <Truncated class="lv-desc" text={r.reason} /> : <span class="muted">—</span>) },
    { id: "state", label: "State", sort: (r) => r.state, render: (r) => <StateBadge state={r.state} /> },
    {
      id: "decided",
      label: "Decision",
      sort: (r) => timeValue(r.decidedAt),
      render: (r) =>
        r.decidedAt ? (
          <>
            by <code>{r.decidedBy}</code> at <Time iso={r.decidedAt} />
            {r.decisionReason ? <div class="sub lv-trunc" title={r.decisionReason}>“{r.decisionReason}”</div> : null}
          </>
        ) : (
          <span class="muted">—</span>
        ),
    },
    {
      id: "type",
      label: "Restore",
      sort: (r) => r.restoreType ?? "",
      render: (r) =>
        r.restoreType === "in-place" ? (
          <span data-testid="restore-type">
            in place: <code>{r.volumeId}</code>
          </span>
        ) : (
          <span data-testid="restore-type">new volume</span>
        ),
    },
    {
      id: "volume",
      label: "Result",
      render: (r) => {
        if (r.restoreType === "in-place")
          return r.replaceRootVolumeTaskId ? (
            <span data-testid="restore-task">
              task <code>{r.replaceRootVolumeTaskId}</code> <StateBadge state={r.taskState ?? ""} />
              <Progress value={`${r.taskProgress ?? 0}%`} label={`Progress of ${r.replaceRootVolumeTaskId}`} />
              {r.safetySnapshotId ? (
                <span class="sub block">
                  safety snapshot <code data-testid="restore-safety-snapshot">{r.safetySnapshotId}</code>
                </span>
              ) : null}
            </span>
          ) : (
            <span class="muted">—</span>
          );
        const v = volume(r.volumeId);
        return r.volumeId ? (
          <span data-testid="restored-volume">
            <code>{r.volumeId}</code> {v ? <StateBadge state={v.status} /> : null}
          </span>
        ) : (
          <span class="muted">—</span>
        );
      },
    },
    ...(me.isAdmin
      ? [
          {
            id: "actions",
            label: "Actions",
            render: (r: RestoreRequest) =>
              r.state === "pending" ? (
                <RowMenu
                  label={`Actions for ${r.restoreRequestId}`}
                  items={[
                    { label: "Approve", name: `Approve ${r.restoreRequestId}`, onSelect: () => setDeciding({ request: r, approve: true }) },
                    { label: "Reject", name: `Reject ${r.restoreRequestId}`, danger: true, onSelect: () => setDeciding({ request: r, approve: false }) },
                  ]}
                />
              ) : (
                <span class="muted">decided</span>
              ),
          },
        ]
      : []),
  ];
  const fields = (r: RestoreRequest) => [
    r.restoreRequestId,
    r.snapshotId,
    r.accountId,
    names.get(r.accountId) ?? "",
    r.reason,
    r.state,
    r.decidedBy ?? "",
    r.decisionReason ?? "",
    r.volumeId ?? "",
    r.restoreType ?? "",
    r.replaceRootVolumeTaskId ?? "",
    r.taskState ?? "",
    r.safetySnapshotId ?? "",
  ];
  const inScope = (requests.data ?? []).filter((r) => (!stateFilter || r.state === stateFilter) && (account === "all" || r.accountId === account));
  const matching = inScope.filter((r) => matchesSearch(search, fields(r)));
  const shown = sortRows(matching, columns, sort, (r) => r.restoreRequestId);

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
          ? "Requests from every team. Approving one restores the snapshot into a new volume of the team's account, or (in place) rolls the team's volume back to it."
          : "Your team's requests. Restoring is for administrators: file a request from a snapshot's Restore action."}
      </p>
      <div class="lv-controls">
        <AccountSwitcher id="rr-account" value={account} onChange={setAccount} />
        <label class="inline">
          <span>State</span>
          <select value={stateFilter} onChange={(e) => setStateFilter(e.currentTarget.value)}>
            <option value="">Any</option>
            <option value="pending">pending</option>
            <option value="approved">approved</option>
            <option value="rejected">rejected</option>
          </select>
        </label>
        <SearchBox
          id="rr-search"
          label="Search restore requests"
          value={search}
          onInput={setSearch}
          hint="Finds the text anywhere (upper and lower case alike) in what each row shows: request and snapshot id, account alias and id, reason, state, who decided and why, the volume's id, the restore type, and an in-place restore's task id, task state and safety snapshot."
          shown={matching.length}
          total={inScope.length}
        />
        {shown.length > 0 ? <SortSelect columns={columns} sort={sort} onChange={setSort} /> : null}
      </div>
      <ErrorNote error={requests.error} />
      <ErrorNote error={volumes.error} />
      {requests.loading && !requests.data ? <p role="status">Loading restore requests…</p> : null}
      {requests.data && shown.length === 0 ? <p class="empty">{search ? `No restore request matches “${search}”.` : "No restore requests."}</p> : null}
      {shown.length > 0 ? (
        <DataTable
          label="Restore requests"
          columns={columns}
          rows={shown}
          rowKey={(r) => r.restoreRequestId}
          rowAttrs={(r) => ({ "data-request-id": r.restoreRequestId, "data-state": r.state })}
          sort={sort}
          onSort={toggle}
        />
      ) : null}
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
          Snapshot <code>{props.request.snapshotId}</code> of account <AccountName id={props.request.accountId} />
          {props.request.reason ? `, because: “${props.request.reason}”` : ""}.
          {props.approve
            ? props.request.restoreType === "in-place"
              ? ` Approving rolls volume ${props.request.volumeId} back to it in place (a safety snapshot is taken first).`
              : " Approving restores it into a new volume of that account."
            : ""}
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
