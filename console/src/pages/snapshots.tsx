// Snapshots: every snapshot the server filters select (tag, volume, state; for administrators
// every account or one), loaded whole so that sorting (newest first by default) and the search
// apply to all of them, then shown a page at a time. Rows can be selected for bulk delete and
// bulk tag; each row's actions (tags, copy, restore, delete) are in its menu.

import { useEffect, useMemo, useState } from "preact/hooks";

import { AccountName, useAccountDirectory } from "../account_names";
import { describeVolumes, ec2, items, childText, parseSnapshot, type Params, type Snapshot, type SnapshotFilter } from "../api/ec2";
import { listAccounts } from "../api/snapvol";
import type { Credentials } from "../api/session";
import { useSession } from "../context";
import {
  CopyableId,
  DataTable,
  GibUpperBound,
  matchesSearch,
  SearchBox,
  sortRows,
  SortSelect,
  timeValue,
  Truncated,
  TruncatedTags,
  useSelection,
  useSort,
  type Column,
} from "../list_view";
import { RowMenu } from "../row_menu";
import { ErrorNote, Progress, StateBadge, Time, useLoader, useReloadWhile } from "../ui";
import { BulkDeleteDialog, BulkTagDialog } from "./bulk_snapshot_actions";
import { CopyDialog, DeleteDialog, RestoreDialog, TagsDialog } from "./snapshot_actions";

const kPageSizes = [5, 10, 25, 50, 100];
const kPollMs = 1000;
/** DescribeSnapshots pages read for one list (1,000 each); beyond, the page says so. */
const kMaxServerPages = 50;

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

interface AllSnapshots {
  snapshots: Snapshot[];
  /** The server had more than kMaxServerPages pages. */
  cut: boolean;
}

/** Every snapshot the filter selects, following NextToken. `owners` are the accounts to list
 *  (Owner.N; an administrator's "all accounts" names each); empty: the caller's own. */
async function describeAllSnapshots(creds: Credentials, filter: SnapshotFilter, owners: string[]): Promise<AllSnapshots> {
  const base: Params = { MaxResults: "1000" };
  owners.forEach((o, i) => (base[`Owner.${i + 1}`] = o));
  let n = 0;
  const add = (name: string, value: string) => {
    n += 1;
    base[`Filter.${n}.Name`] = name;
    base[`Filter.${n}.Value.1`] = value;
  };
  const key = filter.tagKey.trim();
  if (key && filter.tagValue !== "") add(`tag:${key}`, filter.tagValue);
  else if (key) add("tag-key", key);
  if (filter.volumeId) add("volume-id", filter.volumeId);
  if (filter.state) add("status", filter.state);
  const out: Snapshot[] = [];
  let token: string | undefined;
  for (let i = 0; i < kMaxServerPages; i++) {
    const root = await ec2(creds, "DescribeSnapshots", { ...base, NextToken: token });
    out.push(...items(root, "snapshotSet").map(parseSnapshot));
    token = childText(root, "nextToken") || undefined;
    if (!token) return { snapshots: out, cut: false };
  }
  return { snapshots: out, cut: true };
}

type Pending =
  | { kind: "copy" | "restore" | "delete" | "tags"; snapshot: Snapshot }
  | { kind: "bulk-delete" | "bulk-tag"; snapshots: Snapshot[] }
  | null;

/** What the search looks at: exactly the text the row shows (and the hint names). */
function searchFields(s: Snapshot, account: { alias: string } | null): string[] {
  const f = [s.snapshotId, s.volumeId, s.description, s.status, s.statusMessage];
  if (account) f.push(s.ownerId, account.alias);
  for (const t of s.tags) f.push(t.key, t.value, `${t.key}=${t.value}`);
  return f;
}

export function SnapshotsPage({ query }: { query: URLSearchParams }) {
  const { creds, me } = useSession();
  const { names } = useAccountDirectory();
  const filter = useMemo(() => filterFromQuery(query), [query.toString()]);
  const [draft, setDraft] = useState<SnapshotFilter>(filter);
  const [pageSize, setPageSize] = useState(25);
  const [pageIndex, setPageIndex] = useState(0);
  const [search, setSearch] = useState("");
  const [action, setAction] = useState<Pending>(null);
  const [notice, setNotice] = useState("");
  const { sort, setSort, toggle } = useSort({ column: "started", dir: "descending" }, ["started", "size"]);
  const selection = useSelection();

  useEffect(() => setDraft(filter), [filter]);

  const volumes = useLoader(() => describeVolumes(creds), [creds]);
  // Administrators list every account's snapshots (Owner.N = each account) unless one is picked.
  const accounts = useLoader(() => (me.isAdmin ? listAccounts(creds) : Promise.resolve([])), [creds, me.isAdmin]);
  const owners = me.isAdmin
    ? filter.owner
      ? [filter.owner]
      : accounts.data?.map((a) => a.accountId)
    : filter.owner
      ? [filter.owner]
      : [];
  const all = useLoader<AllSnapshots | undefined>(
    () => (owners ? describeAllSnapshots(creds, filter, owners) : Promise.resolve(undefined)),
    [creds, filter, owners?.join(",")],
  );

  // While a snapshot is pending, ask again every second so its progress moves.
  const anyPending = all.data?.snapshots.some((s) => s.status === "pending") ?? false;
  useReloadWhile(all, anyPending, kPollMs);

  const showAccount = me.isAdmin;
  const columns: Column<Snapshot>[] = [
    {
      id: "snapshot",
      label: "Snapshot",
      sort: (s) => s.snapshotId,
      render: (s) => (
        <>
          <CopyableId id={s.snapshotId} />
          <div class="sub">
            of <code>{s.volumeId}</code>
          </div>
        </>
      ),
    },
    ...(showAccount
      ? [{ id: "account", label: "Account", sort: (s: Snapshot) => names.get(s.ownerId) ?? s.ownerId, render: (s: Snapshot) => <AccountName id={s.ownerId} /> }]
      : []),
    {
      id: "state",
      label: "State",
      sort: (s) => s.status,
      render: (s) => (
        <>
          <StateBadge state={s.status} />
          {s.status === "pending" ? <Progress value={s.progress} label={`Progress of ${s.snapshotId}`} /> : null}
          {s.statusMessage ? <Truncated class="sub error-text" text={s.statusMessage} /> : null}
        </>
      ),
    },
    { id: "started", label: "Started", sort: (s) => timeValue(s.startTime), render: (s) => <Time iso={s.startTime} /> },
    { id: "size", label: "Size", class: "nowrap", sort: (s) => s.volumeSize, render: (s) => <GibUpperBound gib={s.volumeSize} /> },
    {
      id: "description",
      label: "Description",
      sort: (s) => s.description,
      render: (s) => (s.description ? <Truncated class="lv-desc" text={s.description} /> : <span class="muted">—</span>),
    },
    { id: "tags", label: "Tags", render: (s) => <TruncatedTags tags={s.tags} /> },
    {
      id: "actions",
      label: "Actions",
      render: (s) => (
        <RowMenu
          label={`Actions for ${s.snapshotId}`}
          items={[
            { label: "Edit tags", name: `Edit tags of ${s.snapshotId}`, onSelect: () => setAction({ kind: "tags", snapshot: s }) },
            { label: "Copy", name: `Copy ${s.snapshotId}`, onSelect: () => setAction({ kind: "copy", snapshot: s }) },
            { label: "Restore", name: `Restore ${s.snapshotId}`, onSelect: () => setAction({ kind: "restore", snapshot: s }) },
            // A pending snapshot cannot be deleted (the server refuses): not offered.
            ...(s.status === "pending"
              ? []
              : [{ label: "Delete", name: `Delete ${s.snapshotId}`, danger: true, onSelect: () => setAction({ kind: "delete", snapshot: s }) }]),
          ]}
        />
      ),
    },
  ];

  const loaded = all.data?.snapshots;
  const matching = (loaded ?? []).filter((s) => matchesSearch(search, searchFields(s, me.isAdmin ? { alias: names.get(s.ownerId) ?? "" } : null)));
  const sorted = sortRows(matching, columns, sort, (s) => s.snapshotId);
  const pages = Math.max(1, Math.ceil(sorted.length / pageSize));
  const index = Math.min(pageIndex, pages - 1);
  const shown = sorted.slice(index * pageSize, (index + 1) * pageSize);
  const shownIds = shown.map((s) => s.snapshotId);
  useEffect(() => selection.prune(shownIds), [shownIds.join(",")]);
  useEffect(() => setPageIndex(0), [search, pageSize, query.toString()]);
  const selected = shown.filter((s) => selection.selected.has(s.snapshotId));

  const apply = (e: Event) => {
    e.preventDefault();
    location.hash = `#/snapshots${queryFromFilter(draft)}`;
  };
  const clear = () => {
    location.hash = "#/snapshots";
  };
  const done = (message: string) => {
    setAction(null);
    setNotice(message);
    all.reload();
  };
  const filtered = filter.owner || filter.tagKey || filter.volumeId || filter.state;

  return (
    <section aria-labelledby="snapshots-title">
      <div class="page-head">
        <h1 id="snapshots-title">Snapshots</h1>
        <button type="button" class="secondary" onClick={all.reload}>
          Refresh
        </button>
      </div>
      <form class="filters" onSubmit={apply} aria-label="Filter snapshots">
        {me.isAdmin ? (
          <label>
            <span>Account</span>
            <select name="owner" value={draft.owner} onChange={(e) => setDraft({ ...draft, owner: e.currentTarget.value })}>
              <option value="">All accounts</option>
              {draft.owner && !accounts.data?.some((a) => a.accountId === draft.owner) ? <option value={draft.owner}>{draft.owner}</option> : null}
              {accounts.data?.map((a) => (
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
      <p class="hint">The filters above are exact (tag key and value as typed, case included) and applied by the server.</p>
      <SearchBox
        id="snapshot-search"
        label="Search snapshots"
        value={search}
        onInput={setSearch}
        hint={`Finds the text anywhere (upper and lower case alike) in what each row shows: snapshot and volume id, ${
          me.isAdmin ? "account alias and id, " : ""
        }state and its message, description, tag keys and values. It searches every snapshot the filters above select, not only this page.`}
        shown={matching.length}
        total={loaded?.length ?? 0}
      />
      <ErrorNote error={volumes.error} />
      <ErrorNote error={accounts.error} />
      {all.data?.cut ? (
        <p class="error" role="alert">
          More than {kMaxServerPages * 1000} snapshots match: only the first {kMaxServerPages * 1000} (in id order) are sorted and searched here. Narrow
          the filters above.
        </p>
      ) : null}
      {notice ? (
        <div class="notice" role="status">
          <p>{notice}</p>
          <button type="button" class="secondary" onClick={() => setNotice("")}>
            Dismiss
          </button>
        </div>
      ) : null}
      <ErrorNote error={all.error} />
      {shown.length > 0 ? (
        <div class="lv-toolbar" role="group" aria-label="Selected snapshots">
          <label class="check">
            <input
              type="checkbox"
              checked={selected.length === shown.length}
              onChange={(e) => selection.setAll(shownIds, e.currentTarget.checked)}
            />
            <span>Select all {shown.length} shown</span>
          </label>
          <span class="muted" data-testid="selected-count">
            {selected.length} selected
          </span>
          <button type="button" class="secondary" disabled={selected.length === 0} onClick={() => setAction({ kind: "bulk-tag", snapshots: selected })}>
            Tag selected…
          </button>
          <button type="button" class="danger" disabled={selected.length === 0} onClick={() => setAction({ kind: "bulk-delete", snapshots: selected })}>
            Delete selected…
          </button>
          <SortSelect columns={columns} sort={sort} onChange={setSort} />
        </div>
      ) : null}
      {!loaded && !all.error && !accounts.error ? <p role="status">Loading snapshots…</p> : null}
      {loaded && shown.length === 0 ? (
        <p class="empty">{search ? `No snapshot matches “${search}”.` : filtered ? "No snapshots match these filters." : "No snapshots yet."}</p>
      ) : null}
      {shown.length > 0 ? (
        <DataTable
          label="Snapshots"
          columns={columns}
          rows={shown}
          rowKey={(s) => s.snapshotId}
          rowAttrs={(s) => ({ "data-snapshot-id": s.snapshotId, "data-state": s.status })}
          sort={sort}
          onSort={toggle}
          select={{ selected: selection.selected, toggle: selection.toggle, label: (s) => `Select ${s.snapshotId}` }}
        />
      ) : null}
      <nav class="pager" aria-label="Pages of snapshots">
        <button type="button" class="secondary" disabled={index === 0} onClick={() => setPageIndex(index - 1)}>
          Previous page
        </button>
        <span aria-live="polite">
          Page {index + 1} of {pages}
        </span>
        <button type="button" class="secondary" disabled={index + 1 >= pages} onClick={() => setPageIndex(index + 1)}>
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
      {action?.kind === "copy" ? <CopyDialog snapshot={action.snapshot} onClose={() => setAction(null)} onDone={done} /> : null}
      {action?.kind === "restore" ? <RestoreDialog snapshot={action.snapshot} onClose={() => setAction(null)} /> : null}
      {action?.kind === "tags" ? <TagsDialog snapshot={action.snapshot} onClose={() => setAction(null)} onDone={done} /> : null}
      {action?.kind === "delete" ? <DeleteDialog snapshot={action.snapshot} onClose={() => setAction(null)} onDone={done} /> : null}
      {action?.kind === "bulk-delete" ? (
        <BulkDeleteDialog
          snapshots={action.snapshots}
          onClose={(changed) => {
            setAction(null);
            if (changed) all.reload();
          }}
        />
      ) : null}
      {action?.kind === "bulk-tag" ? (
        <BulkTagDialog
          snapshots={action.snapshots}
          onClose={(changed) => {
            setAction(null);
            if (changed) all.reload();
          }}
        />
      ) : null}
    </section>
  );
}
