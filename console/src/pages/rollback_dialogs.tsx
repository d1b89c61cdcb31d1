// The administrators' two in-place restores: "Roll back volume in place" on a volume's page
// (RestoreVolumeFromSnapshot: one of the volume's completed snapshots, a safety snapshot first
// unless turned off, and Force with a reason only when the volume is attached to a running
// instance) and "Replace root volume" on the Instances page (CreateReplaceRootVolumeTask: a
// snapshot of the instance's root volume, DeleteReplacedRootVolume). Either answers with a
// task, followed on the Rollback tasks page. Fields left empty are not sent.

import { useRef, useState } from "preact/hooks";

import type { Snapshot } from "../api/ec2";
import { createReplaceRootVolumeTask, restoreVolumeFromSnapshot, type RollbackTask } from "../api/undo";
import { useSession } from "../context";
import { fieldId, LimitedText } from "../fields";
import { kMaxReasonChars, lengthError } from "../limits";
import { DialogActions, ErrorNote, Modal, StateBadge, Time, useAction, useLoader } from "../ui";
import { snapshotsOfVolume } from "./details_common";

function SnapshotChoice(props: { id: string; snapshots: Snapshot[]; value: string; onChange: (v: string) => void }) {
  return (
    <div class="field">
      <label for={props.id}>Snapshot to roll back to</label>
      <select id={props.id} value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)} required>
        {props.snapshots.map((s) => (
          <option key={s.snapshotId} value={s.snapshotId}>
            {s.snapshotId} · {new Date(s.startTime).toISOString().replace("T", " ").slice(0, 19)} UTC
            {s.description ? ` · ${s.description}` : ""}
          </option>
        ))}
      </select>
    </div>
  );
}

/** What a started task says in a dialog: its id, state, and where to follow it. */
function Started({ task, onClose }: { task: RollbackTask; onClose: () => void }) {
  return (
    <div role="status" class="result">
      <p>
        Task <code data-testid="rollback-task-id">{task.taskId}</code> started (<StateBadge state={task.state} />) at{" "}
        <Time iso={task.startTime} />
        {task.safetySnapshotId ? (
          <>
            {" "}
            with safety snapshot <code data-testid="safety-snapshot-id">{task.safetySnapshotId}</code>
          </>
        ) : null}
        . Follow it on <a href="#/rollbacks">Rollback tasks</a>.
      </p>
      <button type="button" onClick={onClose}>
        Close
      </button>
    </div>
  );
}

/** RestoreVolumeFromSnapshot for `volumeId` of account `ownerId`. `inUseBy` names the running instance it is
 *  attached to (then Force and Reason are offered), empty when it is detached or stopped. */
export function RollbackVolumeDialog(props: { volumeId: string; ownerId: string; inUseBy: string; onClose: () => void }) {
  const { creds } = useSession();
  const snaps = useLoader(
    async () => (await snapshotsOfVolume(creds, props.volumeId, props.ownerId)).filter((s) => s.status === "completed"),
    [creds, props.volumeId, props.ownerId],
  );
  const [chosen, setChosen] = useState("");
  const [safety, setSafety] = useState(true);
  const [force, setForce] = useState(false);
  const [reason, setReason] = useState("");
  const [task, setTask] = useState<RollbackTask | null>(null);
  const act = useAction();
  const ids = useRef({ snap: fieldId("rollback-snapshot"), reason: fieldId("rollback-reason") }).current;
  const snapshotId = chosen || snaps.data?.[0]?.snapshotId || "";
  const reasonError = lengthError("The reason", reason, kMaxReasonChars);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (act.busy || !snapshotId || (force && reasonError)) return;
    const t = await act.run(() =>
      restoreVolumeFromSnapshot(creds, { volumeId: props.volumeId, snapshotId, safetySnapshot: safety, force: props.inUseBy !== "" && force, reason }),
    );
    if (t) setTask(t);
  };
  return (
    <Modal title={`Roll back ${props.volumeId} in place`} onClose={props.onClose} busy={act.busy}>
      {task ? (
        <Started task={task} onClose={props.onClose} />
      ) : (
        <form onSubmit={submit}>
          <p>
            The volume's blocks are compared with the snapshot's and only those that differ are written. Its data until now is
            lost unless a safety snapshot is taken first.
          </p>
          <ErrorNote error={snaps.error} />
          {snaps.loading && !snaps.data ? <p role="status">Loading the volume's snapshots…</p> : null}
          {snaps.data && snaps.data.length === 0 ? <p class="empty">This volume has no completed snapshot to roll back to.</p> : null}
          {snaps.data && snaps.data.length > 0 ? <SnapshotChoice id={ids.snap} snapshots={snaps.data} value={snapshotId} onChange={setChosen} /> : null}
          <label class="check">
            <input type="checkbox" name="safety" checked={safety} onChange={(e) => setSafety(e.currentTarget.checked)} /> Take a safety snapshot of
            the volume first (kept, so the rollback can be undone)
          </label>
          {props.inUseBy ? (
            <div class="refusal">
              <p>
                The volume is attached to <code>{props.inUseBy}</code>, which is running: snapvol refuses unless you stop it first (
                <code>snapvol instance stop {props.inUseBy}</code>) or force the rollback.
              </p>
              <label class="check">
                <input type="checkbox" name="force" checked={force} onChange={(e) => setForce(e.currentTarget.checked)} /> Force the rollback while
                the instance runs
              </label>
              {force ? (
                <LimitedText
                  id={ids.reason}
                  name="reason"
                  label="Reason (written to the audit log)"
                  multiline
                  value={reason}
                  max={kMaxReasonChars}
                  error={reasonError}
                  onInput={setReason}
                />
              ) : null}
            </div>
          ) : null}
          <DialogActions act={act} label="Roll back" busyLabel="Starting…" onCancel={props.onClose} danger />
        </form>
      )}
    </Modal>
  );
}

/** CreateReplaceRootVolumeTask for `instanceId`, whose root volume is `rootVolumeId` (of account `ownerId`). */
export function ReplaceRootDialog(props: { instanceId: string; rootVolumeId: string; ownerId: string; onClose: () => void }) {
  const { creds } = useSession();
  const snaps = useLoader(
    async () => (await snapshotsOfVolume(creds, props.rootVolumeId, props.ownerId)).filter((s) => s.status === "completed"),
    [creds, props.rootVolumeId, props.ownerId],
  );
  const [chosen, setChosen] = useState("");
  const [deleteReplaced, setDeleteReplaced] = useState(false);
  const [task, setTask] = useState<RollbackTask | null>(null);
  const act = useAction();
  const snapId = useRef(fieldId("replace-root-snapshot")).current;
  const snapshotId = chosen || snaps.data?.[0]?.snapshotId || "";
  const submit = async (e: Event) => {
    e.preventDefault();
    if (act.busy || !snapshotId) return;
    const t = await act.run(() => createReplaceRootVolumeTask(creds, props.instanceId, snapshotId, deleteReplaced));
    if (t) setTask(t);
  };
  return (
    <Modal title={`Replace the root volume of ${props.instanceId}`} onClose={props.onClose} busy={act.busy}>
      {task ? (
        <Started task={task} onClose={props.onClose} />
      ) : (
        <form onSubmit={submit}>
          <p>
            The root volume <code>{props.rootVolumeId}</code> is restored from one of its snapshots.
          </p>
          <ErrorNote error={snaps.error} />
          {snaps.loading && !snaps.data ? <p role="status">Loading the root volume's snapshots…</p> : null}
          {snaps.data && snaps.data.length === 0 ? <p class="empty">The root volume has no completed snapshot.</p> : null}
          {snaps.data && snaps.data.length > 0 ? <SnapshotChoice id={snapId} snapshots={snaps.data} value={snapshotId} onChange={setChosen} /> : null}
          <label class="check">
            <input type="checkbox" name="delete-replaced" checked={deleteReplaced} onChange={(e) => setDeleteReplaced(e.currentTarget.checked)} />{" "}
            Delete the replaced root volume (DeleteReplacedRootVolume)
          </label>
          <DialogActions act={act} label="Replace root volume" busyLabel="Starting…" onCancel={props.onClose} danger />
        </form>
      )}
    </Modal>
  );
}
