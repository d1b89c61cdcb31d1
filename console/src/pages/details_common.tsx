// What the snapshot and volume details pages share: their frame (crumbs, heading, id checks),
// the requests they make (read here from the EC2 XML so the list pages' parsing stays as it
// is), sizes as the server reports them, and tags edited in place.

import type { ComponentChildren } from "preact";
import { useRef, useState } from "preact/hooks";

import { child, childText, describeSnapshots, ec2, items, parseSnapshot, parseVolume, type Params, type Snapshot, type Tag, tagParams, type Volume } from "../api/ec2";
import type { Credentials } from "../api/session";
import { useSession } from "../context";
import { NotSent } from "../fields";
import { isSystemTagKey, kMaxTagsPerResource } from "../limits";
import { tagChanges, TagEditor, tagRows, useDescribedTagsForm } from "../tag_editor";
import { ErrorNote, SystemTags, TagList, useAction } from "../ui";

const kGiB = 1024 ** 3;

/** EC2's id shape, as snapvold checks it: prefix, then 17 (or the older 8) lowercase hex digits. */
export function isResourceId(id: string, prefix: string): boolean {
  const rest = id.slice(prefix.length);
  return id.startsWith(prefix) && (rest.length === 17 || rest.length === 8) && /^[0-9a-f]+$/.test(rest);
}

/** Why `id` cannot be a `prefix` id, in words; undefined when it can. */
export function idProblem(id: string, prefix: string, what: string): string | undefined {
  if (id === "") return `The address names no ${what}: it should end in ${prefix} followed by 17 hexadecimal digits.`;
  if (isResourceId(id, prefix)) return undefined;
  return `“${id}” is not a ${what} id: ${what} ids are ${prefix} followed by 17 (or, for old ones, 8) lowercase hexadecimal digits.`;
}

/** A details page's frame: the way back to its list, the id as the heading, and `children`
 *  only when `id` has the shape of a `kind` id (else why it has not, in words). */
export function DetailsShell(props: { id: string; kind: string; prefix: string; list: string; listName: string; children: ComponentChildren }) {
  const problem = idProblem(props.id, props.prefix, props.kind);
  const Kind = props.kind[0].toUpperCase() + props.kind.slice(1);
  return (
    <section aria-labelledby="details-title" class="details">
      <p class="crumbs">
        <a href={props.list}>{props.listName}</a> ›
      </p>
      <h1 id="details-title">
        {Kind} <code>{props.id || "(no id)"}</code>
      </h1>
      {problem ? (
        <p class="error" role="alert" data-testid="details-problem">
          {problem}
        </p>
      ) : (
        props.children
      )}
    </section>
  );
}

/** What a details page says when the server knows no `kind` `id` for this caller. */
export function NotVisible({ kind, id }: { kind: string; id: string }) {
  return (
    <p class="error" role="alert" data-testid="details-problem">
      There is no {kind} {id} that your account can see: it may have been deleted, or belong to another account.
    </p>
  );
}

/** The one snapshot `id`, or null when the server says it does not exist (for this caller). */
export async function fetchSnapshot(creds: Credentials, id: string): Promise<Snapshot | null> {
  try {
    const root = await ec2(creds, "DescribeSnapshots", { "SnapshotId.1": id });
    const found = items(root, "snapshotSet").map(parseSnapshot);
    return found.find((s) => s.snapshotId === id) ?? null;
  } catch (e) {
    if ((e as { code?: string }).code === "InvalidSnapshot.NotFound") return null;
    throw e;
  }
}

export interface VolumeDetails extends Volume {
  /** attachTime of each attachment, same order as `attachments`. */
  attachTimes: string[];
  volumeType: string;
  availabilityZone: string;
}

export async function fetchVolume(creds: Credentials, id: string): Promise<VolumeDetails | null> {
  try {
    const root = await ec2(creds, "DescribeVolumes", { "VolumeId.1": id });
    const el = items(root, "volumeSet").find((v) => childText(v, "volumeId") === id);
    if (!el) return null;
    return {
      ...parseVolume(el),
      attachTimes: items(el, "attachmentSet").map((a) => childText(a, "attachTime")),
      volumeType: childText(el, "volumeType"),
      availabilityZone: childText(el, "availabilityZone"),
    };
  } catch (e) {
    if ((e as { code?: string }).code === "InvalidVolume.NotFound") return null;
    throw e;
  }
}

export interface SnapshotLock {
  lockState: string;
  lockDuration: string;
  lockCreatedOn: string;
  lockExpiresOn: string;
  coolOffPeriodExpiresOn: string;
}

/** The snapshot's lock (DescribeLockedSnapshots, which lists the caller's own account's locks), or null. */
export async function fetchLock(creds: Credentials, id: string): Promise<SnapshotLock | null> {
  const root = await ec2(creds, "DescribeLockedSnapshots", { "SnapshotId.1": id });
  const el = items(root, "snapshotSet").find((s) => childText(s, "snapshotId") === id);
  if (!el) return null;
  return {
    lockState: childText(el, "lockState"),
    lockDuration: childText(el, "lockDuration"),
    lockCreatedOn: childText(el, "lockCreatedOn"),
    lockExpiresOn: childText(el, "lockExpiresOn"),
    coolOffPeriodExpiresOn: childText(el, "coolOffPeriodExpiresOn"),
  };
}

export interface VolumeInitialization {
  /** "initializing" while a restored volume still loads blocks from its snapshot, else "completed". */
  state: string;
  /** Percent loaded, when the server says (restored volumes). */
  progress: number | null;
}

/** DescribeVolumeStatus's initialization-state of each of `volumeIds` (all of the caller's when empty). */
export async function fetchInitialization(creds: Credentials, volumeIds: string[]): Promise<Map<string, VolumeInitialization>> {
  const params: Params = {};
  volumeIds.forEach((id, i) => (params[`VolumeId.${i + 1}`] = id));
  const root = await ec2(creds, "DescribeVolumeStatus", params);
  const out = new Map<string, VolumeInitialization>();
  for (const el of items(root, "volumeStatusSet")) {
    const details = items(child(el, "volumeStatus"), "details");
    const init = details.find((d) => childText(d, "name") === "initialization-state");
    const progress = childText(child(el, "initializationStatusDetails"), "progress");
    out.set(childText(el, "volumeId"), { state: childText(init, "status"), progress: progress === "" ? null : Number(progress) });
  }
  return out;
}

/** Every snapshot of `volumeId` the caller sees (all pages), newest first. `owner` (an account
 *  id) lists that account's: how an administrator sees another team's snapshots. */
export async function snapshotsOfVolume(creds: Credentials, volumeId: string, owner = ""): Promise<Snapshot[]> {
  const out: Snapshot[] = [];
  let token: string | undefined;
  for (let pages = 0; pages < 100; pages++) {
    const page = await describeSnapshots(creds, { owner, tagKey: "", tagValue: "", volumeId, state: "" }, 1000, token);
    out.push(...page.snapshots);
    if (!page.nextToken) break;
    token = page.nextToken;
  }
  return out.sort((a, b) => (a.startTime === b.startTime ? (a.snapshotId < b.snapshotId ? 1 : -1) : a.startTime < b.startTime ? 1 : -1));
}

/** A size as the EC2 API gives it (whole GiB, rounded up by snapvold): the exact byte size is
 *  not sent, so the text says "up to", with the bound in bytes. */
export function GibSize({ gib }: { gib: number }) {
  return (
    <span data-testid="size">
      <strong>up to {gib} GiB</strong> ({(gib * kGiB).toLocaleString("en-US")} bytes at most)
      <span class="sub block">
        The API reports sizes in whole GiB, rounded up; the exact size in bytes is not sent by the server.
      </span>
    </span>
  );
}

/** An exact byte count, with the binary unit people read (e.g. "256 MiB (268,435,456 bytes)"). */
export function ByteSize({ bytes }: { bytes: number }) {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const short = u === 0 ? `${bytes} bytes` : `${Number.isInteger(v) ? v : v.toFixed(2)} ${units[u]}`;
  return (
    <span>
      <strong>{short}</strong>
      {u === 0 ? null : <> ({bytes.toLocaleString("en-US")} bytes)</>}
    </span>
  );
}

/** A value the server keeps but sends through no API the console can call. */
export function NotSentByServer() {
  return <span class="muted not-sent-by-server">not sent by the server’s API</span>;
}

/** `resourceId`'s tags, edited in place: removed tags go out with DeleteTags naming key and
 *  value (so exactly that tag is deleted, not a value someone set since), new and changed
 *  ones with CreateTags. Tags snapvol sets (aws:…) are shown, not editable. */
export function InlineTags(props: { resourceId: string; tags: Tag[]; onSaved: () => void }) {
  const { creds } = useSession();
  const system = props.tags.filter((t) => isSystemTagKey(t.key));
  const own = props.tags.filter((t) => !isSystemTagKey(t.key));
  // The system's tags do not take from the 50 (as the server counts, and EC2 counts aws: tags).
  const form = useDescribedTagsForm({ tags: own, maxTags: kMaxTagsPerResource });
  const [editing, setEditing] = useState(false);
  const [saved, setSaved] = useState("");
  const formRef = useRef<HTMLFormElement>(null);
  const act = useAction();
  const start = () => {
    form.setRows(tagRows(own));
    setSaved("");
    act.clear();
    setEditing(true);
  };
  const submit = async (e: Event) => {
    e.preventDefault();
    if (act.busy || !form.check(formRef.current)) return;
    const { removed, changed } = tagChanges(own, form.rows);
    const ok = await act.run(async () => {
      if (removed.length > 0) await ec2(creds, "DeleteTags", { "ResourceId.1": props.resourceId, ...tagParams(removed) });
      if (changed.length > 0) await ec2(creds, "CreateTags", { "ResourceId.1": props.resourceId, ...tagParams(changed) });
      return true;
    });
    if (ok) {
      setEditing(false);
      setSaved(removed.length + changed.length === 0 ? "No change to save." : "Tags saved; shown as the server now holds them.");
      props.onSaved();
    }
  };
  return (
    <section class="details-tags" aria-labelledby="details-tags-title">
      <h2 id="details-tags-title">Tags</h2>
      <SystemTags tags={system} />
      {editing ? (
        <form ref={formRef} onSubmit={submit} noValidate aria-busy={act.busy ? "true" : undefined}>
          <TagEditor rows={form.rows} onChange={form.setRows} errors={form.tagErrors} showAll={form.tried} maxTags={kMaxTagsPerResource} />
          <NotSent shown={form.tried} count={form.problems} />
          <ErrorNote error={act.error} />
          <div class="buttons">
            <button type="submit" disabled={act.busy}>
              {act.busy ? "Saving…" : "Save tags"}
            </button>
            <button type="button" class="secondary" disabled={act.busy} onClick={() => setEditing(false)}>
              Cancel
            </button>
          </div>
        </form>
      ) : (
        <>
          <div data-testid="tags">
            <TagList tags={own} />
          </div>
          <p role="status" class="saved-note">
            {saved}
          </p>
          <button type="button" class="secondary" onClick={start}>
            Edit tags
          </button>
        </>
      )}
    </section>
  );
}

/** A label and its value in a details list. */
export function Row(props: { label: string; children: preact.ComponentChildren; testId?: string }) {
  return (
    <div class="details-row" data-field={props.testId}>
      <dt>{props.label}</dt>
      <dd>{props.children}</dd>
    </div>
  );
}
