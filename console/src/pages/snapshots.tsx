// Snapshots: state with a live progress bar, start time, size, description, tags; filter by
// tag, volume and state; paging; copy, restore (or a restore request) and delete.

import { useEffect, useMemo, useState } from "preact/hooks";

import { describeSnapshots, describeVolumes, type Snapshot, type SnapshotFilter } from "../api/ec2";
import { listAccounts } from "../api/snapvol";
import { useSession } from "../context";
import { ErrorNote, gib, ListTable, Progress, StateBadge, TagList, Time, useLoader } from "../ui";
import { CopyDialog, DeleteDialog, RestoreDialog, TagsDialog } from "./snapshot_actions";

const kPageSizes = [5, 10, 25, 50, 100];
const kPollMs = 1000;

function filterFromQuery(q: URLSearchParams): SnapshotFilter {
  return {
    owner: q.get("owner") ?? "",
    tagKey: q.get("tagKey") ?? "",
    tagValue: q.get("tagValue") ?? "",
    volumeId: q.get("volume") ?? "",
    state: q.get("state") ?? "",
  };
}

function queryFromFilter(f: SnapshotFilter): string {
  const q = new URLSearchParams();
  if (f.owner) q.set("owner", f.owner);
  if (f.tagKey) q.set("tagKey", f.tagKey);
  if (f.tagValue) q.set("tagValue", f.tagValue);
  if (f.volumeId) q.set("volume", f.volumeId);
  if (f.state) q.set("state", f.state);
  const s = q.toString();
  return s ? `?${s}` : "";
}

interface Paging {
  key: string;
  tokens: (string | undefined)[];
  index: number;
}

type Pending = { kind: "copy" | "restore" | "delete" | "tags"; snapshot: Snapshot } | null;

export function SnapshotsPage({ query }: { query: URLSearchParams }) {
  const { creds, me } = useSession();
  const filter = useMemo(() => filterFromQuery(query), [query.toString()]);
  const [draft, setDraft] = useState<SnapshotFilter>(filter);
  const [pageSize, setPageSize] = useState(25);
  // tokens[i] is the NextToken that starts page i (page 0 starts without one); paging starts
  // over whenever the filters or the page size change.
  const pagingKey = `${query.toString()}|${pageSize}`;
  const [paging, setPaging] = useState<Paging>({ key: pagingKey, tokens: [undefined], index: 0 });
  const current: Paging = paging.key === pagingKey ? paging : { key: pagingKey, tokens: [undefined], index: 0 };
  const pageIndex = current.index;
  const [action, setAction] = useState<Pending>(null);
  const [notice, setNotice] = useState("");

  useEffect(() => setDraft(filter), [filter]);

  const volumes = useLoader(() => describeVolumes(creds), [creds]);
  // Administrators can list any team's snapshots (Owner.1 = that account).
  const accounts = useLoader(() => (me.isAdmin ? listAccounts(creds) : Promise.resolve([])), [creds, me.isAdmin]);
  const page = useLoader(
    () => describeSnapshots(creds, filter, pageSize, current.tokens[pageIndex]),
    [creds, filter, pageSize, pageIndex, current.tokens[pageIndex]],
  );

  // While a snapshot on this page is pending, ask again every second so its progress moves.
  const anyPending = page.data?.snapshots.some((s) => s.status === "pending") ?? false;
  useEffect(() => {
    if (!anyPending || page.loading) return;
    const t = window.setTimeout(page.reload, kPollMs);
    return () => window.clearTimeout(t);
  }, [anyPending, page.loading, page.data]);

  const apply = (e: Event) => {
    e.preventDefault();
    location.hash = `#/snapshots${queryFromFilter(draft)}`;
  };
  const clear = () => {
    location.hash = "#/snapshots";
  };
  const next = () => {
    const token = page.data?.nextToken;
    if (!token) return;
    setPaging({ key: pagingKey, tokens: [...current.tokens.slice(0, pageIndex + 1), token], index: pageIndex + 1 });
  };
  const done = (message: string) => {
    setAction(null);
    setNotice(message);
    page.reload();
  };
  const filtered = filter.owner || filter.tagKey || filter.volumeId || filter.state;

  return (
    <section aria-labelledby="snapshots-title">
      <div class="page-head">
        <h1 id="snapshots-title">Snapshots</h1>
        <button type="button" class="secondary" onClick={page.reload}>
          Refresh
        </button>
      </div>
      <form class="filters" onSubmit={apply} aria-label="Filter snapshots">
        {me.isAdmin ? (
          <label>
            <span>Account</span>
            <select name="owner" value={draft.owner} onChange={(e) => setDraft({ ...draft, owner: e.currentTarget.value })}>
              <option value="">My account</option>
              {accounts.data
                ?.filter((a) => a.accountId !== me.accountId)
                .map((a) => (
                  <option key={a.accountId} value={a.accountId}>
                    {a.alias} ({a.accountId})
                  </option>
                ))}
            </select>
          </label>
        ) : null}
        <label>
          <span>Tag key</span>
          <input name="tagKey" value={draft.tagKey} onInput={(e) => setDraft({ ...draft, tagKey: e.currentTarget.value })} />
        </label>
        <label>
          <span>Tag value</span>
          <input
            name="tagValue"
            value={draft.tagValue}
            placeholder="any value"
            onInput={(e) => setDraft({ ...draft, tagValue: e.currentTarget.value })}
          />
        </label>
        <label>
          <span>Volume</span>
          <select name="volume" value={draft.volumeId} onChange={(e) => setDraft({ ...draft, volumeId: e.currentTarget.value })}>
            <option value="">All volumes</option>
            {draft.volumeId && !volumes.data?.some((v) => v.volumeId === draft.volumeId) ? (
              <option value={draft.volumeId}>{draft.volumeId}</option>
            ) : null}
            {volumes.data?.map((v) => (
              <option key={v.volumeId} value={v.volumeId}>
                {v.volumeId}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span>State</span>
          <select name="state" value={draft.state} onChange={(e) => setDraft({ ...draft, state: e.currentTarget.value })}>
            <option value="">Any state</option>
            <option value="pending">pending</option>
            <option value="completed">completed</option>
            <option value="error">error</option>
          </select>
        </label>
        <div class="buttons">
          <button type="submit">Apply filters</button>
          <button type="button" class="secondary" onClick={clear} disabled={!filtered}>
            Clear
          </button>
        </div>
      </form>
      <ErrorNote error={volumes.error} />
      <ErrorNote error={accounts.error} />
      {notice ? (
        <div class="notice" role="status">
          <p>{notice}</p>
          <button type="button" class="secondary" onClick={() => setNotice("")}>
            Dismiss
          </button>
        </div>
      ) : null}
      <ErrorNote error={page.error} />
      <ListTable
        loading={page.loading && !page.data}
        rows={page.data?.snapshots}
        loadingText="Loading snapshots…"
        empty={filtered ? "No snapshots match these filters." : "No snapshots yet."}
        label="Snapshots"
        columns={["Snapshot", "State", "Started", "Size", "Description", "Tags", "Actions"]}
      >
        {(page.data?.snapshots ?? []).map((s) => (
          <tr key={s.snapshotId} data-snapshot-id={s.snapshotId} data-state={s.status}>
            <td data-label="Snapshot">
              <code>{s.snapshotId}</code>
              <div class="sub">
                of <code>{s.volumeId}</code>
              </div>
              {s.ownerAlias ? <div class="sub">owner {s.ownerAlias}</div> : null}
            </td>
            <td data-label="State">
              <StateBadge state={s.status} />
              {s.status === "pending" ? <Progress value={s.progress} label={`Progress of ${s.snapshotId}`} /> : null}
              {s.statusMessage ? <div class="sub error-text">{s.statusMessage}</div> : null}
            </td>
            <td data-label="Started">
              <Time iso={s.startTime} />
            </td>
            <td data-label="Size" class="nowrap">{gib(s.volumeSize)}</td>
            <td data-label="Description">{s.description || <span class="muted">—</span>}</td>
            <td data-label="Tags">
              <TagList tags={s.tags} />
            </td>
            <td data-label="Actions" class="actions">
              <button type="button" class="secondary" onClick={() => setAction({ kind: "tags", snapshot: s })} aria-label={`Edit tags of ${s.snapshotId}`}>
                Tags
              </button>
              <button type="button" class="secondary" onClick={() => setAction({ kind: "copy", snapshot: s })} aria-label={`Copy ${s.snapshotId}`}>
                Copy
              </button>
              <button type="button" class="secondary" onClick={() => setAction({ kind: "restore", snapshot: s })} aria-label={`Restore ${s.snapshotId}`}>
                Restore
              </button>
              <button type="button" class="danger" onClick={() => setAction({ kind: "delete", snapshot: s })} aria-label={`Delete ${s.snapshotId}`}>
                Delete
              </button>
            </td>
          </tr>
        ))}
      </ListTable>
      <nav class="pager" aria-label="Pages of snapshots">
        <button type="button" class="secondary" disabled={pageIndex === 0} onClick={() => setPaging({ ...current, index: pageIndex - 1 })}>
          Previous page
        </button>
        <span aria-live="polite">Page {pageIndex + 1}</span>
        <button type="button" class="secondary" disabled={!page.data?.nextToken} onClick={next}>
          Next page
        </button>
        <label class="inline">
          <span>Per page</span>
          <select value={String(pageSize)} onChange={(e) => setPageSize(Number(e.currentTarget.value))}>
            {kPageSizes.map((n) => (
              <option key={n} value={String(n)}>
                {n}
              </option>
            ))}
          </select>
        </label>
      </nav>
      {action?.kind === "copy" ? (
        <CopyDialog snapshot={action.snapshot} onClose={() => setAction(null)} onDone={done} />
      ) : null}
      {action?.kind === "restore" ? (
        <RestoreDialog snapshot={action.snapshot} onClose={() => setAction(null)} />
      ) : null}
      {action?.kind === "tags" ? (
        <TagsDialog snapshot={action.snapshot} onClose={() => setAction(null)} onDone={done} />
      ) : null}
      {action?.kind === "delete" ? (
        <DeleteDialog snapshot={action.snapshot} onClose={() => setAction(null)} onDone={done} />
      ) : null}
    </section>
  );
}
