// One snapshot (#/snapshot/snap-…): what the server holds about it (state, size, times,
// volume, lock, restore requests) and its tags, edited in place. The page can be linked and
// reloaded; an id that is malformed or unknown is said to be so, in the page.

import { useEffect } from "preact/hooks";

import type { ApiError } from "../api/errors";
import { AccountName } from "../account_names";
import { getSnapshotDetails, listRestoreRequests, type SnapshotDetails as SnapshotDetailsData } from "../api/snapvol";
import { useSession } from "../context";
import { ErrorNote, Progress, StateBadge, Time, useLoader, useReloadWhile } from "../ui";
import { ByteSize, DetailsShell, fetchLock, fetchSnapshot, InlineTags, NotVisible, Row } from "./details_common";

const kPollMs = 1000;

export function SnapshotDetailsPage({ id }: { id: string }) {
  return (
    <DetailsShell id={id} kind="snapshot" prefix="snap-" list="#/snapshots" listName="Snapshots">
      <SnapshotDetails id={id} />
    </DetailsShell>
  );
}

function SnapshotDetails({ id }: { id: string }) {
  const { creds, me } = useSession();
  const snap = useLoader(() => fetchSnapshot(creds, id), [creds, id]);
  const lock = useLoader(() => fetchLock(creds, id), [creds, id]);
  const requests = useLoader(async () => (await listRestoreRequests(creds)).filter((r) => r.snapshotId === id), [creds, id]);
  const s = snap.data;
  // Exact sizes, bytes stored, parent and completion: snapvol's JSON API (EC2 sends none);
  // asked again when the state changes (a pending snapshot completes).
  const more = useLoader(() => getSnapshotDetails(creds, id), [creds, id, s?.status]);
  const d = more.data;

  // A pending snapshot's progress moves: ask again every second until it settles.
  useReloadWhile(snap, s?.status === "pending", kPollMs);
  // Usage is counted in the background a moment after completion: ask again until it is.
  useReloadWhile(more, d?.usageStatus === "pending", kPollMs);

  useEffect(() => {
    if (s) document.title = `${s.snapshotId} · snapvol console`;
  }, [s?.snapshotId]);

  if (snap.loading && snap.data === undefined) return <p role="status">Loading snapshot…</p>;
  if (snap.error) return <ErrorNote error={snap.error} />;
  if (!s) return <NotVisible kind="snapshot" id={id} />;
  return (
    <>
      {s.description ? <p class="details-description">{s.description}</p> : null}
      <dl class="details-list">
        <Row label="State" testId="state">
          <StateBadge state={s.status} />
          {s.status === "pending" ? <Progress value={s.progress} label={`Progress of ${s.snapshotId}`} /> : null}
          {s.statusMessage ? <div class="sub">{s.statusMessage}</div> : null}
        </Row>
        <Row label="Size" testId="size">
          {d ? <ByteSize bytes={d.volumeSizeBytes} /> : <DetailsPending loaded={more} />}
        </Row>
        <Row label="Stored bytes" testId="stored">
          {d ? (
            <>
              <ByteSize bytes={d.storedBytes} />
              <span class="sub block">
                new data this snapshot wrote to the store ({d.changedBlocks.toLocaleString("en-US")} of{" "}
                {d.totalBlocks.toLocaleString("en-US")} blocks changed); the rest is shared with earlier snapshots
              </span>
            </>
          ) : (
            <DetailsPending loaded={more} />
          )}
        </Row>
        <Row label="Full size" testId="full">
          {d && d.fullSnapshotSizeBytes !== undefined ? (
            <>
              <ByteSize bytes={d.fullSnapshotSizeBytes} />
              <span class="sub block">the volume’s blocks that hold data (holes are not counted)</span>
            </>
          ) : (
            <UsagePending details={d} loaded={more} />
          )}
        </Row>
        <Row label="Unique bytes" testId="unique">
          {d && d.uniqueBytes !== undefined ? (
            <>
              <ByteSize bytes={d.uniqueBytes} />
              <span class="sub block">stored only for this snapshot: what deleting it alone would free</span>
            </>
          ) : (
            <UsagePending details={d} loaded={more} />
          )}
        </Row>
        <Row label="How it was cut" testId="cut">
          {s.consistency ? (
            <>
              {/* A copy read while the volume ran may be torn: said where nobody can miss it. */}
              <span class={s.consistency.startsWith("crash-unsafe") ? "warning" : undefined}>{s.consistency}</span>
              {s.changedBlocks ? <span class="sub block">changed blocks: {s.changedBlocks}</span> : null}
            </>
          ) : (
            <span class="muted">not recorded</span>
          )}
        </Row>
        <Row label="Volume" testId="volume">
          <a href={`#/volume/${encodeURIComponent(s.volumeId)}`}>
            <code>{s.volumeId}</code>
          </a>
        </Row>
        <Row label="Parent snapshot" testId="parent">
          {!d ? (
            <DetailsPending loaded={more} />
          ) : d.parentSnapshotId ? (
            <a href={`#/snapshot/${encodeURIComponent(d.parentSnapshotId)}`}>
              <code>{d.parentSnapshotId}</code>
            </a>
          ) : d.incremental ? (
            <span class="muted">incremental from a snapshot you cannot see (deleted, or another account’s)</span>
          ) : (
            <span>none: a full snapshot</span>
          )}
        </Row>
        <Row label="Started" testId="started">
          <Time iso={s.startTime} withRelative />
        </Row>
        <Row label="Completed" testId="completed">
          {!d ? (
            <DetailsPending loaded={more} />
          ) : d.completionTime ? (
            <Time iso={d.completionTime} withRelative />
          ) : (
            <span class="muted">not completed</span>
          )}
        </Row>
        <Row label="Owner" testId="owner">
          <AccountName id={s.ownerId} />
        </Row>
        <Row label="Encrypted" testId="encrypted">
          {s.encrypted ? "yes" : "no"}
        </Row>
        <Row label="Lock" testId="lock">
          {lock.loading && lock.data === undefined ? <span role="status">Loading…</span> : null}
          <ErrorNote error={lock.error} />
          {lock.data === null && s.ownerId === me.accountId ? <span>not locked</span> : null}
          {lock.data === null && s.ownerId !== me.accountId ? (
            <span class="muted">
              not known: DescribeLockedSnapshots lists only your own account’s locks, and this snapshot belongs to another
            </span>
          ) : null}
          {lock.data ? (
            <span>
              <strong class="lock-state">{lock.data.lockState}</strong>
              {lock.data.lockExpiresOn ? (
                <>
                  {" "}
                  until <Time iso={lock.data.lockExpiresOn} withRelative />
                </>
              ) : null}
              {lock.data.coolOffPeriodExpiresOn && lock.data.lockState === "compliance-cooloff" ? (
                <>
                  ; cooling off until <Time iso={lock.data.coolOffPeriodExpiresOn} withRelative />
                </>
              ) : null}
            </span>
          ) : null}
        </Row>
      </dl>

      <section aria-labelledby="details-requests-title" class="details-part">
        <h2 id="details-requests-title">Restore requests</h2>
        <ErrorNote error={requests.error} />
        {requests.loading && !requests.data ? <p role="status">Loading restore requests…</p> : null}
        {requests.data && requests.data.length === 0 ? <p class="muted">No restore requests for this snapshot.</p> : null}
        {requests.data && requests.data.length > 0 ? (
          <table class="list" aria-label={`Restore requests for ${s.snapshotId}`}>
            <thead>
              <tr>
                <th scope="col">Request</th>
                <th scope="col">State</th>
                <th scope="col">Requested</th>
                <th scope="col">By</th>
                <th scope="col">Reason</th>
                <th scope="col">Volume</th>
              </tr>
            </thead>
            <tbody>
              {requests.data.map((r) => (
                <tr key={r.restoreRequestId} data-restore-request-id={r.restoreRequestId}>
                  <td data-label="Request">
                    <code>{r.restoreRequestId}</code>
                  </td>
                  <td data-label="State">
                    <StateBadge state={r.state} />
                  </td>
                  <td data-label="Requested">
                    <Time iso={r.requestedAt} />
                  </td>
                  <td data-label="By">
                    <AccountName id={r.accountId} />
                  </td>
                  <td data-label="Reason" class="wrap">
                    {r.reason || <span class="muted">—</span>}
                  </td>
                  <td data-label="Volume">
                    {r.volumeId ? (
                      <a href={`#/volume/${encodeURIComponent(r.volumeId)}`}>
                        <code>{r.volumeId}</code>
                      </a>
                    ) : (
                      <span class="muted">—</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </section>

      <InlineTags resourceId={s.snapshotId} tags={s.tags} onSaved={snap.reload} />
    </>
  );
}

/** A row whose value comes from the JSON API: loading, or its error in words. */
/** Why a usage figure is not shown (yet). */
function UsagePending({ details, loaded }: { details: SnapshotDetailsData | undefined; loaded: { loading: boolean; error: ApiError | undefined } }) {
  if (!details) return <DetailsPending loaded={loaded} />;
  switch (details.usageStatus) {
    case "pending":
      return <span role="status">Counting…</span>;
    case "not-completed":
      return <span class="muted">known once the snapshot has completed</span>;
    case "unavailable":
      return <span class="muted">cannot be counted now: {details.usageError ?? "the store did not answer"}</span>;
    default:
      return <span class="muted">this service does not count usage</span>;
  }
}

function DetailsPending({ loaded }: { loaded: { loading: boolean; error: ApiError | undefined } }) {
  if (loaded.error) return <ErrorNote error={loaded.error} />;
  return <span role="status">Loading…</span>;
}
