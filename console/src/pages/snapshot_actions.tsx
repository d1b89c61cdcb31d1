// Dialogs for one snapshot: copy, delete (with confirmation) and restore. Restore asks the
// server first (a DryRun CreateVolume): administrators restore into a new volume; anyone the
// server refuses sees its refusal as sent and may file a restore request with a reason.

import { useEffect, useState } from "preact/hooks";

import { ApiError, asApiError } from "../api/errors";
import { childText, describeVolumes, ec2, parseVolume, type Params, type Snapshot, type Tag } from "../api/ec2";
import { createRestoreRequest, type RestoreRequest } from "../api/snapvol";
import { useSession } from "../context";
import { DialogActions, ErrorNote, Modal, StateBadge, TagEditor, useAction } from "../ui";

export function CopyDialog(props: { snapshot: Snapshot; onClose: () => void; onDone: (msg: string) => void }) {
  const { creds } = useSession();
  const [description, setDescription] = useState(`Copy of ${props.snapshot.snapshotId}`);
  const act = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
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
    <Modal title={`Copy ${props.snapshot.snapshotId}`} onClose={props.onClose}>
      <form onSubmit={submit}>
        <label>
          <span>Description of the copy</span>
          <input name="description" maxLength={255} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </label>
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
    <Modal title={`Delete ${props.snapshot.snapshotId}?`} onClose={props.onClose}>
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
  const [filed, setFiled] = useState<RestoreRequest | null>(null);
  const [restored, setRestored] = useState<{ volumeId: string; status: string } | null>(null);
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

  const restore = async (e: Event) => {
    e.preventDefault();
    const root = await act.run(() => ec2(creds, "CreateVolume", { SnapshotId: id, AvailabilityZone: `${creds.region}a` }));
    if (root) {
      const v = parseVolume(root);
      setRestored({ volumeId: v.volumeId, status: v.status });
    }
  };
  const request = async (e: Event) => {
    e.preventDefault();
    const r = await act.run(() => createRestoreRequest(creds, id, reason));
    if (r) setFiled(r);
  };

  return (
    <Modal title={`Restore ${id}`} onClose={props.onClose}>
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
          <label>
            <span>Reason for the restore</span>
            <textarea name="reason" rows={3} maxLength={1024} required value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
          </label>
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
 *  CreateTags (which overwrites a key's value). */
export function TagsDialog(props: { snapshot: Snapshot; onClose: () => void; onDone: (msg: string) => void }) {
  const { creds } = useSession();
  const id = props.snapshot.snapshotId;
  const [tags, setTags] = useState<Tag[]>(() => props.snapshot.tags.map((t) => ({ ...t })));
  const act = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    const wanted = new Map<string, string>();
    for (const t of tags) if (t.key.trim() !== "" && t.value !== "") wanted.set(t.key.trim(), t.value);
    const removed = props.snapshot.tags.filter((t) => !wanted.has(t.key));
    const changed = [...wanted].filter(([k, v]) => props.snapshot.tags.find((t) => t.key === k)?.value !== v);
    const ok = await act.run(async () => {
      if (removed.length > 0) {
        const p: Params = { "ResourceId.1": id };
        removed.forEach((t, i) => (p[`Tag.${i + 1}.Key`] = t.key));
        await ec2(creds, "DeleteTags", p);
      }
      if (changed.length > 0) {
        const p: Params = { "ResourceId.1": id };
        changed.forEach(([k, v], i) => {
          p[`Tag.${i + 1}.Key`] = k;
          p[`Tag.${i + 1}.Value`] = v;
        });
        await ec2(creds, "CreateTags", p);
      }
      return true;
    });
    if (ok) props.onDone(`Saved the tags of ${id}.`);
  };
  return (
    <Modal title={`Tags of ${id}`} onClose={props.onClose}>
      <form onSubmit={submit}>
        <TagEditor tags={tags} onChange={setTags} />
        <DialogActions act={act} label="Save tags" busyLabel="Saving…" onCancel={props.onClose} />
      </form>
    </Modal>
  );
}
