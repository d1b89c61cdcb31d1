// The "Create snapshot" dialog (one volume) and the "Create snapshots" dialog (all of an
// instance's volumes), with description and tag rows, Name and Owner offered first.

import { useState } from "preact/hooks";

import { ec2, items, parseSnapshot, tagSpecification, type Snapshot, type Tag } from "../api/ec2";
import { useSession } from "../context";
import { DialogActions, Modal, TagEditor, useAction } from "../ui";

function defaultTags(name: string, owner: string): Tag[] {
  return [
    { key: "Name", value: name },
    { key: "Owner", value: owner },
  ];
}

export function CreateSnapshotDialog(props: {
  volumeId: string;
  volumeName: string;
  onClose: () => void;
  onCreated: (s: Snapshot[]) => void;
}) {
  const { creds, me } = useSession();
  const [description, setDescription] = useState("");
  const [tags, setTags] = useState<Tag[]>(() => defaultTags(props.volumeName, me.alias));
  const act = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    const root = await act.run(() =>
      ec2(creds, "CreateSnapshot", {
        VolumeId: props.volumeId,
        Description: description || undefined,
        ...tagSpecification(tags),
      }),
    );
    if (root) props.onCreated([parseSnapshot(root)]);
  };
  return (
    <Modal title={`Create snapshot of ${props.volumeId}`} onClose={props.onClose}>
      <form onSubmit={submit}>
        <label>
          <span>Description</span>
          <input name="description" maxLength={255} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </label>
        <TagEditor tags={tags} onChange={setTags} />
        <DialogActions act={act} label="Create snapshot" busyLabel="Creating…" onCancel={props.onClose} />
      </form>
    </Modal>
  );
}

export function CreateSnapshotsDialog(props: {
  instanceId: string;
  instanceName: string;
  onClose: () => void;
  onCreated: (s: Snapshot[]) => void;
}) {
  const { creds, me } = useSession();
  const [description, setDescription] = useState("");
  const [excludeBoot, setExcludeBoot] = useState(true);
  const [copyTags, setCopyTags] = useState(false);
  const [tags, setTags] = useState<Tag[]>(() => defaultTags(props.instanceName, me.alias));
  const act = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    const root = await act.run(() =>
      ec2(creds, "CreateSnapshots", {
        "InstanceSpecification.InstanceId": props.instanceId,
        "InstanceSpecification.ExcludeBootVolume": excludeBoot ? "true" : "false",
        Description: description || undefined,
        CopyTagsFromSource: copyTags ? "volume" : undefined,
        ...tagSpecification(tags),
      }),
    );
    if (root) props.onCreated(items(root, "snapshotSet").map(parseSnapshot));
  };
  return (
    <Modal title={`Create snapshots of ${props.instanceId}`} onClose={props.onClose}>
      <form onSubmit={submit}>
        <label>
          <span>Description</span>
          <input name="description" maxLength={255} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </label>
        <label class="check">
          <input type="checkbox" checked={excludeBoot} onChange={(e) => setExcludeBoot(e.currentTarget.checked)} />
          <span>Exclude boot volume</span>
        </label>
        <label class="check">
          <input type="checkbox" checked={copyTags} onChange={(e) => setCopyTags(e.currentTarget.checked)} />
          <span>Copy tags from volumes</span>
        </label>
        <TagEditor tags={tags} onChange={setTags} />
        <DialogActions act={act} label="Create snapshots" busyLabel="Creating…" onCancel={props.onClose} />
      </form>
    </Modal>
  );
}

/** What the page shows after a snapshot request was accepted. */
export function CreatedNotice({ snapshots, onDismiss }: { snapshots: Snapshot[]; onDismiss: () => void }) {
  if (snapshots.length === 0) return null;
  return (
    <div class="notice" role="status">
      <p>
        {snapshots.length === 1 ? "Snapshot " : "Snapshots "}
        {snapshots.map((s, i) => (
          <span key={s.snapshotId}>
            {i > 0 ? ", " : ""}
            <a href={`#/snapshots?volume=${encodeURIComponent(s.volumeId)}`}>{s.snapshotId}</a>
          </span>
        ))}{" "}
        started ({snapshots[0].status}).
      </p>
      <button type="button" class="secondary" onClick={onDismiss}>
        Dismiss
      </button>
    </div>
  );
}
