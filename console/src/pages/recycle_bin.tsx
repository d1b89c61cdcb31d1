// Recycle Bin (#/recycle-bin): snapshots deleted while a retention rule kept them
// (ListSnapshotsInRecycleBin: a member sees its account's, an administrator every account's),
// with when each entered the bin and when its retention ends; "Recover"
// (RestoreSnapshotFromRecycleBin) per row and for the selected rows. Below them, the account's
// retention rules (rbin_rules.tsx).

import { useEffect, useState } from "preact/hooks";

import { asApiError, type ApiError } from "../api/errors";
import { listSnapshotsInRecycleBin, restoreSnapshotFromRecycleBin, type BinnedSnapshot } from "../api/undo";
import { useSession } from "../context";
import { CopyableId, DataTable, matchesSearch, SearchBox, sortRows, SortSelect, timeValue, Truncated, useSelection, useSort, type Column } from "../list_view";
import { RowMenu } from "../row_menu";
import { ErrorNote, Time, useLoader } from "../ui";
import { RetentionRules } from "./rbin_rules";

interface Outcome {
  recovered: string[];
  failed: { snapshotId: string; error: ApiError }[];
}

export function RecycleBinPage() {
  const { creds } = useSession();
  const bin = useLoader(() => listSnapshotsInRecycleBin(creds), [creds]);
  const [search, setSearch] = useState("");
  const { sort, setSort, toggle } = useSort({ column: "entered", dir: "descending" }, ["entered", "exit"]);
  const selection = useSelection();
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<Outcome | null>(null);

  // One request at a time, in the order shown; each failure is kept with its code and message.
  const recover = async (ids: string[]) => {
    if (busy || ids.length === 0) return;
    setBusy(true);
    const out: Outcome = { recovered: [], failed: [] };
    for (const id of ids) {
      try {
        await restoreSnapshotFromRecycleBin(creds, id);
        out.recovered.push(id);
      } catch (e) {
        out.failed.push({ snapshotId: id, error: asApiError(e) });
      }
    }
    setOutcome(out);
    setBusy(false);
    selection.clear();
    bin.reload();
  };

  const columns: Column<BinnedSnapshot>[] = [
    { id: "snapshot", label: "Snapshot", sort: (s) => s.snapshotId, render: (s) => <CopyableId id={s.snapshotId} /> },
    { id: "description", label: "Description", sort: (s) => s.description, render: (s) => (s.description ? <Truncated class="lv-desc" text={s.description} /> : <span class="muted">—</span>) },
    { id: "volume", label: "Volume", sort: (s) => s.volumeId, render: (s) => <code>{s.volumeId}</code> },
    { id: "entered", label: "Deleted (entered the bin)", sort: (s) => timeValue(s.enterTime), render: (s) => <Time iso={s.enterTime} /> },
    { id: "exit", label: "Retention ends", sort: (s) => timeValue(s.exitTime), render: (s) => <Time iso={s.exitTime} withRelative /> },
    {
      id: "actions",
      label: "Actions",
      render: (s) => (
        <RowMenu label={`Actions for ${s.snapshotId}`} items={[{ label: "Recover", name: `Recover ${s.snapshotId}`, onSelect: () => recover([s.snapshotId]) }]} />
      ),
    },
  ];
  const matching = (bin.data ?? []).filter((s) => matchesSearch(search, [s.snapshotId, s.description, s.volumeId]));
  const shown = sortRows(matching, columns, sort, (s) => s.snapshotId);
  const shownIds = shown.map((s) => s.snapshotId);
  useEffect(() => selection.prune(shownIds), [shownIds.join(",")]);
  const selected = shownIds.filter((id) => selection.selected.has(id));

  return (
    <section aria-labelledby="bin-title">
      <div class="page-head">
        <h1 id="bin-title">Recycle Bin</h1>
        <button type="button" class="secondary" onClick={bin.reload}>
          Refresh
        </button>
      </div>
      <p class="hint">
        Snapshots deleted while a retention rule applied to them. They can be recovered until their retention ends; then they are
        deleted for good.
      </p>
      <div class="lv-controls">
        <SearchBox
          id="bin-search"
          label="Search the Recycle Bin"
          value={search}
          onInput={setSearch}
          hint="Finds the text in snapshot ids, descriptions and volume ids."
          shown={matching.length}
          total={bin.data?.length ?? 0}
        />
        {shown.length > 0 ? <SortSelect columns={columns} sort={sort} onChange={setSort} /> : null}
      </div>
      {shown.length > 0 ? (
        <div class="lv-toolbar">
          <label class="check">
            <input
              type="checkbox"
              checked={selected.length > 0 && selected.length === shown.length}
              onChange={(e) => selection.setAll(shownIds, e.currentTarget.checked)}
            />{" "}
            Select all shown
          </label>
          <button type="button" disabled={busy || selected.length === 0} onClick={() => recover(selected)}>
            {busy ? "Recovering…" : `Recover selected (${selected.length})`}
          </button>
        </div>
      ) : null}
      {outcome ? (
        <div class="result" role="status" data-testid="bin-outcome">
          {outcome.recovered.length > 0 ? (
            <p>
              Recovered {outcome.recovered.map((id, i) => (
                <span key={id}>
                  {i > 0 ? ", " : ""}
                  <a href={`#/snapshot/${encodeURIComponent(id)}`}>
                    <code>{id}</code>
                  </a>
                </span>
              ))}
              : back in <a href="#/snapshots">Snapshots</a>.
            </p>
          ) : null}
          {outcome.failed.map((f) => (
            <div key={f.snapshotId}>
              <p>
                Not recovered: <code>{f.snapshotId}</code>
              </p>
              <ErrorNote error={f.error} always />
            </div>
          ))}
        </div>
      ) : null}
      <ErrorNote error={bin.error} />
      {bin.loading && !bin.data ? <p role="status">Loading the Recycle Bin…</p> : null}
      {bin.data && shown.length === 0 ? <p class="empty">{search ? `No snapshot in the bin matches “${search}”.` : "The Recycle Bin is empty."}</p> : null}
      {shown.length > 0 ? (
        <DataTable
          label="Snapshots in the Recycle Bin"
          columns={columns}
          rows={shown}
          rowKey={(s) => s.snapshotId}
          rowAttrs={(s) => ({ "data-snapshot-id": s.snapshotId })}
          sort={sort}
          onSort={toggle}
          select={{ selected: selection.selected, toggle: selection.toggle, label: (s) => `Select ${s.snapshotId}` }}
        />
      ) : null}
      <RetentionRules />
    </section>
  );
}
