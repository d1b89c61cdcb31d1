// Dialogs for one snapshot: copy, delete (with confirmation) and restore (those for several
// selected snapshots are bulk_snapshot_actions.tsx). Restore asks the server first
// (a DryRun CreateVolume): administrators restore into a new volume and follow its loading
// (DescribeVolumeStatus's initialization-state) until it is completed; anyone the server
// refuses sees its refusal as sent and may file a restore request with a reason, into a new
// volume or in place (rolling one of the account's volumes back, the snapshot's own by default).

import { useEffect, useRef, useState } from "preact/hooks";

import { ApiError, asApiError } from "../api/errors";
import { child, childText, describeVolumes, ec2, items, parseVolume, type Snapshot, tagParams } from "../api/ec2";
import type { Credentials } from "../api/session";
import { createRestoreRequest, type RestoreRequest } from "../api/snapvol";
import { useSession } from "../context";
import { fieldId, LimitedText, NotSent, useFocusFirstInvalid } from "../fields";
import { isSystemTagKey, kMaxDescriptionChars, kMaxReasonChars, kMaxTagsPerResource, lengthError } from "../limits";
import { tagChanges, TagEditor, useDescribedTagsForm } from "../tag_editor";
import { DialogActions, ErrorNote, Modal, Progress, StateBadge, SystemTags, useAction } from "../ui";

export function CopyDialog(props: { snapshot: Snapshot; onClose: () => void; onDone: (msg: string) => void }) {
  const { creds } = useSession();
  const [description, setDescription] = useState(`Copy of ${props.snapshot.snapshotId}`);
  const descriptionError = lengthError("The description", description, kMaxDescriptionChars);
  const [tried, setTried] = useState(false);
  const descriptionId = useRef(fieldId("copy-description")).current;
  const focusFirstInvalid = useFocusFirstInvalid();
  const formRef = useRef<HTMLFormElement>(null);
  const act = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    setTried(true);
    if (act.busy) return;
    if (descriptionError) return focusFirstInvalid(formRef.current);
    const root = await act.run(() =>
      ec2(creds, "CopySnapshot", {
        SourceSnapshotId: props.snapshot.snapshotId,
        SourceRegion: creds.region,
        Description: description || undefined,
      }),
    );
    if (root) props.onDone(`Copied ${props.snapshot.snapshotId} to ${childText(root, "snapshotId")}.`);
  };
  return (
    <Modal title={`Copy ${props.snapshot.snapshotId}`} onClose={props.onClose} busy={act.busy}>
      <form ref={formRef} onSubmit={submit} noValidate>
        <LimitedText
          id={descriptionId}
          name="description"
          label="Description of the copy"
          value={description}
          max={kMaxDescriptionChars}
          error={descriptionError}
          onInput={setDescription}
        />
        <NotSent shown={tried} count={descriptionError ? 1 : 0} />
        <DialogActions act={act} label="Copy snapshot" busyLabel="Copying…" onCancel={props.onClose} />
      </form>
    </Modal>
  );
}

export function DeleteDialog(props: { snapshot: Snapshot; onClose: () => void; onDone: (msg: string) => void }) {
  const { creds } = useSession();
  const act = useAction();
  const confirm = async () => {
    const root = await act.run(() => ec2(creds, "DeleteSnapshot", { SnapshotId: props.snapshot.snapshotId }));
    if (root) props.onDone(`Deleted ${props.snapshot.snapshotId}.`);
  };
  return (
    <Modal title={`Delete ${props.snapshot.snapshotId}?`} onClose={props.onClose} busy={act.busy}>
      <p>
        The snapshot of <code>{props.snapshot.volumeId}</code>
        {props.snapshot.description ? ` (“${props.snapshot.description}”)` : ""} will be deleted. This cannot be undone;
        other snapshots are not affected.
      </p>
      <DialogActions act={act} label="Delete snapshot" busyLabel="Deleting…" onCancel={props.onClose} onAction={confirm} danger cancelFirst />
    </Modal>
  );
}

type Probe = { state: "checking" } | { state: "allowed" } | { state: "refused"; error: ApiError } | { state: "failed"; error: ApiError };

export function RestoreDialog(props: { snapshot: Snapshot; onClose: () => void }) {
  const { creds } = useSession();
  const id = props.snapshot.snapshotId;
  const [probe, setProbe] = useState<Probe>({ state: "checking" });
  const [reason, setReason] = useState("");
  const [inPlace, setInPlace] = useState(false);
  const [target, setTarget] = useState(props.snapshot.volumeId);
  const [volumeIds, setVolumeIds] = useState<string[] | null>(null);
  const [filed, setFiled] = useState<RestoreRequest | null>(null);
  const [restored, setRestored] = useState<{ volumeId: string; status: string } | null>(null);
  const [loading, setLoading] = useState<Initialization | null>(null);
  const act = useAction();

  useEffect(() => {
    let live = true;
    ec2(creds, "CreateVolume", { SnapshotId: id, AvailabilityZone: `${creds.region}a`, DryRun: "true" }).then(
      () => live && setProbe({ state: "failed", error: new ApiError("InvalidResponse", "The server ignored DryRun.", 200) }),
      (e) => {
        if (!live) return;
        const err = asApiError(e);
        if (err.code === "DryRunOperation") setProbe({ state: "allowed" });
        else if (err.code === "UnauthorizedOperation") setProbe({ state: "refused", error: err });
        else setProbe({ state: "failed", error: err });
      },
    );
    return () => {
      live = false;
    };
  }, [id]);

  // The new volume is `creating` while the snapshot is written into it: follow it until it settles.
  useEffect(() => {
    if (!restored || restored.status !== "creating") return;
    const t = window.setTimeout(() => {
      describeVolumes(creds, [restored.volumeId]).then(
        (vs) => vs[0] && setRestored({ volumeId: restored.volumeId, status: vs[0].status }),
        (e) => act.fail(asApiError(e)),
      );
    }, 1000);
    return () => window.clearTimeout(t);
  }, [restored]);

  // Then its data loads (lazily, while it is already usable): follow initialization-state
  // until it says completed.
  useEffect(() => {
    if (!restored || loading?.state === "completed") return;
    const t = window.setTimeout(
      () => {
        describeInitialization(creds, restored.volumeId).then(setLoading, (e) => act.fail(asApiError(e)));
      },
      loading ? 1000 : 0,
    );
    return () => window.clearTimeout(t);
  }, [restored?.volumeId, loading]);

  const restore = async (e: Event) => {
    e.preventDefault();
    const root = await act.run(() => ec2(creds, "CreateVolume", { SnapshotId: id, AvailabilityZone: `${creds.region}a` }));
    if (root) {
      const v = parseVolume(root);
      setRestored({ volumeId: v.volumeId, status: v.status });
    }
  };
  const reasonError = lengthError("The reason", reason, kMaxReasonChars);
  const reasonId = useRef(fieldId("restore-reason")).current;
  const request = async (e: Event) => {
    e.preventDefault();
    if (act.busy || reasonError) return;
    if (inPlace && !target) return;
    const r = await act.run(() => createRestoreRequest(creds, id, reason, inPlace ? target : undefined));
    if (r) setFiled(r);
  };
  // The account's volumes, for an in-place request: loaded when that is chosen.
  useEffect(() => {
    if (!inPlace || volumeIds !== null) return;
    describeVolumes(creds).then(
      (vs) => setVolumeIds(vs.map((v) => v.volumeId)),
      (e) => act.fail(asApiError(e)),
    );
  }, [inPlace]);
  const targetId = useRef(fieldId("restore-target")).current;

  return (
    <Modal title={`Restore ${id}`} onClose={props.onClose} busy={act.busy}>
      {probe.state === "checking" ? <p role="status">Checking whether you may restore…</p> : null}
      {probe.state === "failed" ? <ErrorNote error={probe.error} /> : null}
      {probe.state === "allowed" && !restored ? (
        <form onSubmit={restore}>
          <p>
            The snapshot is restored into a new volume of its account (<code>{props.snapshot.ownerAlias || props.snapshot.ownerId}</code>).
          </p>
          <DialogActions act={act} label="Restore to a new volume" busyLabel="Restoring…" onCancel={props.onClose} />
        </form>
      ) : null}
      {restored ? (
        <div role="status" class="result">
          <ErrorNote error={act.error} />
          <p>
            Restoring into <code data-testid="restored-volume">{restored.volumeId}</code> (<StateBadge state={restored.status} />
            ).
          </p>
          <InitializationNote volumeId={restored.volumeId} init={loading} />
          <button type="button" onClick={props.onClose}>
            Close
          </button>
        </div>
      ) : null}
      {probe.state === "refused" && !filed ? (
        <form onSubmit={request}>
          <div class="refusal" role="alert">
            <p>
              The server refused the restore: <strong class="server-message">{probe.error.message}</strong>{" "}
              <span class="error-code">({probe.error.code})</span>
            </p>
            <p>You can ask an administrator to restore it for you.</p>
          </div>
          <LimitedText
            id={reasonId}
            name="reason"
            label="Reason for the restore"
            multiline
            required
            value={reason}
            max={kMaxReasonChars}
            error={reasonError}
            onInput={setReason}
          />
          <fieldset>
            <legend>Restore</legend>
            <label class="check">
              <input type="radio" name="restore-type" checked={!inPlace} onChange={() => setInPlace(false)} /> Into a new volume
            </label>
            <label class="check">
              <input type="radio" name="restore-type" checked={inPlace} onChange={() => setInPlace(true)} /> In place: roll a volume back to
              this snapshot
            </label>
            {inPlace ? (
              <div class="field">
                <label for={targetId}>Volume to roll back</label>
                <select id={targetId} value={target} onChange={(e) => setTarget(e.currentTarget.value)} required>
                  {[...new Set([props.snapshot.volumeId, ...(volumeIds ?? [])])].map((v) => (
                    <option key={v} value={v}>
                      {v}
                      {v === props.snapshot.volumeId ? " (the snapshot's volume)" : ""}
                    </option>
                  ))}
                </select>
              </div>
            ) : null}
          </fieldset>
          <DialogActions act={act} label="Request restore" busyLabel="Sending…" onCancel={props.onClose} />
        </form>
      ) : null}
      {filed ? (
        <div role="status" class="result">
          <p>
            Restore request <code data-testid="restore-request-id">{filed.restoreRequestId}</code> filed (
            <StateBadge state={filed.state} />
            ). An administrator will approve or reject it; follow it on <a href="#/restore-requests">Restore requests</a>.
          </p>
          <button type="button" onClick={props.onClose}>
            Close
          </button>
        </div>
      ) : null}
    </Modal>
  );
}

/** Edits a snapshot's tags: removed keys go out with DeleteTags, new or changed ones with
 *  CreateTags (which overwrites a key's value). Tags snapvol sets itself (aws:…) are shown
 *  but not editable, and count against the limit of 50. */
export function TagsDialog(props: { snapshot: Snapshot; onClose: () => void; onDone: (msg: string) => void }) {
  const { creds } = useSession();
  const id = props.snapshot.snapshotId;
  const system = props.snapshot.tags.filter((t) => isSystemTagKey(t.key));
  const own = props.snapshot.tags.filter((t) => !isSystemTagKey(t.key));
  const form = useDescribedTagsForm({ tags: own, maxTags: kMaxTagsPerResource });
  const formRef = useRef<HTMLFormElement>(null);
  const act = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    if (act.busy || !form.check(formRef.current)) return;
    const { removed, changed } = tagChanges(own, form.rows);
    const ok = await act.run(async () => {
      if (removed.length > 0) await ec2(creds, "DeleteTags", { "ResourceId.1": id, ...tagParams(removed, true) });
      if (changed.length > 0) await ec2(creds, "CreateTags", { "ResourceId.1": id, ...tagParams(changed) });
      return true;
    });
    if (ok) props.onDone(`Saved the tags of ${id}.`);
  };
  return (
    <Modal title={`Tags of ${id}`} onClose={props.onClose} busy={act.busy}>
      <form ref={formRef} onSubmit={submit} noValidate>
        <SystemTags tags={system} />
        <TagEditor rows={form.rows} onChange={form.setRows} errors={form.tagErrors} showAll={form.tried} maxTags={kMaxTagsPerResource} />
        <NotSent shown={form.tried} count={form.problems} />
        <DialogActions act={act} label="Save tags" busyLabel="Saving…" onCancel={props.onClose} />
      </form>
    </Modal>
  );
}

/** A volume's loading, as DescribeVolumeStatus reports it: initialization-state
 *  ("initializing" or "completed") and, for a restored volume, the percentage loaded. */
export interface Initialization {
  state: string;
  progress: number | undefined;
}

export async function describeInitialization(creds: Credentials, volumeId: string): Promise<Initialization> {
  const root = await ec2(creds, "DescribeVolumeStatus", { "VolumeId.1": volumeId });
  const item = items(root, "volumeStatusSet").find((v) => childText(v, "volumeId") === volumeId);
  const details = items(child(item, "volumeStatus"), "details");
  const state = childText(details.find((d) => childText(d, "name") === "initialization-state"), "status");
  const progress = childText(child(item, "initializationStatusDetails"), "progress");
  return { state: state || "unknown", progress: progress === "" ? undefined : Number(progress) };
}

export function InitializationNote({ volumeId, init }: { volumeId: string; init: Initialization | null }) {
  return (
    <div class="lv-init" data-testid="initialization">
      <p>
        Loading the data (initialization-state):{" "}
        <strong data-testid="initialization-state">{init ? init.state : "asking…"}</strong>
        {init?.progress !== undefined ? ` (${init.progress}%)` : ""}
      </p>
      {init && init.state !== "completed" ? (
        <Progress value={String(init.progress ?? 0)} label={`Loading of ${volumeId}`} />
      ) : null}
    </div>
  );
}
