// The "Create Snapshot" dialog (one volume) and the "Create snapshots" dialog (all of an
// instance's volumes): a description and tag rows, checked as they are typed. The dialog opens
// with no tag rows (the teams' guide adds Name and Owner with Add Tag); the volume's Name and
// Owner = the account's alias are offered as one-click suggestions.

import { useRef, useState } from "preact/hooks";

import { ec2, items, parseSnapshot, tagSpecification, type Snapshot, type Tag } from "../api/ec2";
import { useSession } from "../context";
import { fieldId, LimitedText, NotSent } from "../fields";
import { kMaxDescriptionChars } from "../limits";
import { rowsToTags, TagEditor, useDescribedTagsForm } from "../tag_editor";
import { DialogActions, Modal, useAction } from "../ui";

function suggestedTags(name: string, alias: string): Tag[] {
  const out: Tag[] = [];
  if (name) out.push({ key: "Name", value: name });
  if (alias) out.push({ key: "Owner", value: alias });
  return out;
}

/** Description and tags, with their limits and errors, shared by both create dialogs. */
function DescriptionAndTags({ form, suggestions }: { form: ReturnType<typeof useDescribedTagsForm>; suggestions: Tag[] }) {
  const id = useRef(fieldId("description")).current;
  return (
    <>
      <LimitedText
        id={id}
        name="description"
        label="Description"
        value={form.description}
        max={kMaxDescriptionChars}
        error={form.descriptionError}
        onInput={form.setDescription}
      />
      <TagEditor rows={form.rows} onChange={form.setRows} errors={form.tagErrors} showAll={form.tried} suggestions={suggestions} />
      <NotSent shown={form.tried} count={form.problems} />
    </>
  );
}

export function CreateSnapshotDialog(props: {
  volumeId: string;
  volumeName: string;
  onClose: () => void;
  onCreated: (s: Snapshot[]) => void;
}) {
  const { creds, me } = useSession();
  const form = useDescribedTagsForm({});
  const formRef = useRef<HTMLFormElement>(null);
  const act = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    if (act.busy || !form.check(formRef.current)) return;
    const root = await act.run(() =>
      ec2(creds, "CreateSnapshot", {
        VolumeId: props.volumeId,
        Description: form.description || undefined,
        ...tagSpecification(rowsToTags(form.rows)),
      }),
    );
    if (root) props.onCreated([parseSnapshot(root)]);
  };
  return (
    <Modal
      title={`Create Snapshot of ${props.volumeId}`}
      onClose={props.onClose}
      busy={act.busy}
      busyNote="The snapshot is still being created: the request has been sent and cannot be cancelled. This dialog closes when the server answers."
    >
      <form ref={formRef} onSubmit={submit} noValidate>
        <DescriptionAndTags form={form} suggestions={suggestedTags(props.volumeName, me.alias)} />
        <DialogActions act={act} label="Create Snapshot" busyLabel="Creating…" onCancel={props.onClose} />
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
  const [excludeBoot, setExcludeBoot] = useState(true);
  const [copyTags, setCopyTags] = useState(false);
  const form = useDescribedTagsForm({});
  const formRef = useRef<HTMLFormElement>(null);
  const act = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    if (act.busy || !form.check(formRef.current)) return;
    const root = await act.run(() =>
      ec2(creds, "CreateSnapshots", {
        "InstanceSpecification.InstanceId": props.instanceId,
        "InstanceSpecification.ExcludeBootVolume": excludeBoot ? "true" : "false",
        Description: form.description || undefined,
        CopyTagsFromSource: copyTags ? "volume" : undefined,
        ...tagSpecification(rowsToTags(form.rows)),
      }),
    );
    if (root) props.onCreated(items(root, "snapshotSet").map(parseSnapshot));
  };
  return (
    <Modal
      title={`Create snapshots of ${props.instanceId}`}
      onClose={props.onClose}
      busy={act.busy}
      busyNote="The snapshots are still being created: the request has been sent and cannot be cancelled. This dialog closes when the server answers."
    >
      <form ref={formRef} onSubmit={submit} noValidate>
        <label class="check">
          <input type="checkbox" checked={excludeBoot} onChange={(e) => setExcludeBoot(e.currentTarget.checked)} />
          <span>Exclude boot volume</span>
        </label>
        <label class="check">
          <input type="checkbox" checked={copyTags} onChange={(e) => setCopyTags(e.currentTarget.checked)} />
          <span>Copy tags from volumes</span>
        </label>
        <DescriptionAndTags form={form} suggestions={suggestedTags(props.instanceName, me.alias)} />
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
