// One volume (#/volume/vol-…): its size, state and attachment, the snapshots taken of it
// (newest first, each linking to its details) and its tags, edited in place. Administrators
// roll it back in place from here (rollback_dialogs.tsx).

import { useEffect, useState } from "preact/hooks";

import { describeInstances, tagValue } from "../api/ec2";
import { getVolumeDetails } from "../api/snapvol";
import { useSession } from "../context";
import { ErrorNote, Progress, StateBadge, Time, useLoader, useReloadWhile } from "../ui";
import { RollbackVolumeDialog } from "./rollback_dialogs";
import { ByteSize, DetailsShell, fetchInitialization, fetchVolume, GibSize, InlineTags, NotVisible, Row, snapshotsOfVolume } from "./details_common";

const kPollMs = 1000;

export function VolumeDetailsPage({ id }: { id: string }) {
  return (
    <DetailsShell id={id} kind="volume" prefix="vol-" list="#/volumes" listName="Volumes">
      <VolumeDetails id={id} />
    </DetailsShell>
  );
}

function VolumeDetails({ id }: { id: string }) {
  const { creds, me } = useSession();
  const [rollingBack, setRollingBack] = useState(false);
  const vol = useLoader(() => fetchVolume(creds, id), [creds, id]);
  const snaps = useLoader(() => snapshotsOfVolume(creds, id), [creds, id]);
  // The instances it is attached to, by id (an administrator may see another account's).
  const attachedTo = vol.data?.attachments.map((a) => a.instanceId) ?? [];
  const instances = useLoader(
    () => (attachedTo.length ? describeInstances(creds, attachedTo) : Promise.resolve([])),
    [creds, attachedTo.join(",")],
  );
  const init = useLoader(async () => (vol.data ? (await fetchInitialization(creds, [id])).get(id) ?? null : null), [creds, id, vol.data]);
  const v = vol.data;
  // The exact size comes from snapvol's JSON API (DescribeVolumes gives whole GiB only).
  const exact = useLoader(async () => (vol.data ? await getVolumeDetails(creds, id) : null), [creds, id, vol.data]);

  const anyPending = snaps.data?.some((s) => s.status === "pending") ?? false;
  useReloadWhile(snaps, anyPending, kPollMs);
  useReloadWhile(vol, v?.status === "creating", kPollMs);
  // A restored volume loads its blocks from the snapshot in the background: follow it.
  useReloadWhile(init, init.data?.state === "initializing", kPollMs);
  useEffect(() => {
    if (v) document.title = `${v.volumeId} · snapvol console`;
  }, [v?.volumeId]);

  if (vol.loading && vol.data === undefined) return <p role="status">Loading volume…</p>;
  if (vol.error) return <ErrorNote error={vol.error} />;
  if (!v) return <NotVisible kind="volume" id={id} />;
  const name = tagValue(v.tags, "Name");
  const instanceName = (instanceId: string) => {
    const i = instances.data?.find((x) => x.instanceId === instanceId);
    return i ? tagValue(i.tags, "Name") : "";
  };
  // Attached to an instance that is not stopped: a rollback needs Force (and says why).
  const inUseBy =
    v.attachments.find((a) => (instances.data?.find((x) => x.instanceId === a.instanceId)?.state ?? "running") !== "stopped")?.instanceId ?? "";
  return (
    <>
      {name ? <p class="details-description">{name}</p> : null}
      {me.isAdmin && exact.data ? (
        <div class="details-actions">
          <button type="button" onClick={() => setRollingBack(true)}>
            Roll back volume in place
          </button>
        </div>
      ) : null}
      {rollingBack && exact.data ? <RollbackVolumeDialog volumeId={v.volumeId} ownerId={exact.data.accountId} inUseBy={inUseBy} onClose={() => setRollingBack(false)} /> : null}
      <dl class="details-list">
        <Row label="State" testId="state">
          <StateBadge state={v.status} />
        </Row>
        <Row label="Size" testId="size">
          {exact.data ? (
            <>
              <ByteSize bytes={exact.data.sizeBytes} />
              <span class="sub block">EC2’s API reports it as {exact.data.sizeGiB} GiB (whole GiB, rounded up)</span>
            </>
          ) : (
            <>
              <GibSize gib={v.size} />
              <ErrorNote error={exact.error} />
            </>
          )}
        </Row>
        <Row label="Attachment" testId="attachment">
          {v.attachments.length === 0 ? <span>not attached</span> : null}
          {v.attachments.map((a, i) => (
            <div key={a.instanceId} class="attachment">
              <code>{a.instanceId}</code>
              {instanceName(a.instanceId) ? ` (${instanceName(a.instanceId)})` : ""} as <code>{a.device}</code>,{" "}
              <StateBadge state={a.status} />
              {v.attachTimes[i] ? (
                <>
                  {" "}
                  since <Time iso={v.attachTimes[i]} />
                </>
              ) : null}
            </div>
          ))}
        </Row>
        <Row label="Created" testId="created">
          <Time iso={v.createTime} withRelative />
        </Row>
        <Row label="Restored from" testId="restored-from">
          {v.snapshotId ? (
            <a href={`#/snapshot/${encodeURIComponent(v.snapshotId)}`}>
              <code>{v.snapshotId}</code>
            </a>
          ) : (
            <span class="muted">no snapshot (an original volume)</span>
          )}
        </Row>
        {v.snapshotId ? (
          <Row label="Initialization" testId="initialization">
            <ErrorNote error={init.error} />
            {init.data ? (
              <>
                <StateBadge state={init.data.state} />
                {init.data.state === "initializing" && init.data.progress !== null ? (
                  <Progress value={`${init.data.progress}%`} label={`Initialization of ${v.volumeId}`} />
                ) : null}
              </>
            ) : null}
          </Row>
        ) : null}
        <Row label="Type" testId="type">
          {v.volumeType || <span class="muted">—</span>}
        </Row>
      </dl>

      <section aria-labelledby="volume-snapshots-title" class="details-part">
        <h2 id="volume-snapshots-title">Snapshots of this volume</h2>
        <ErrorNote error={snaps.error} />
        {snaps.loading && !snaps.data ? <p role="status">Loading snapshots…</p> : null}
        {snaps.data && snaps.data.length === 0 ? <p class="muted">No snapshots of this volume yet.</p> : null}
        {snaps.data && snaps.data.length > 0 ? (
          <table class="list" aria-label={`Snapshots of ${v.volumeId}`}>
            <thead>
              <tr>
                <th scope="col">Snapshot</th>
                <th scope="col" aria-sort="descending">
                  Started (newest first)
                </th>
                <th scope="col">State</th>
                <th scope="col">Description</th>
              </tr>
            </thead>
            <tbody>
              {snaps.data.map((s) => (
                <tr key={s.snapshotId} data-snapshot-id={s.snapshotId}>
                  <td data-label="Snapshot">
                    <a href={`#/snapshot/${encodeURIComponent(s.snapshotId)}`}>
                      <code>{s.snapshotId}</code>
                    </a>
                  </td>
                  <td data-label="Started">
                    <Time iso={s.startTime} />
                  </td>
                  <td data-label="State">
                    <StateBadge state={s.status} />
                    {s.status === "pending" ? <Progress value={s.progress} label={`Progress of ${s.snapshotId}`} /> : null}
                  </td>
                  <td data-label="Description" class="wrap">
                    {s.description || <span class="muted">—</span>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </section>

      <InlineTags resourceId={v.volumeId} tags={v.tags} onSaved={vol.reload} />
    </>
  );
}
