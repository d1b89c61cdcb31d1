// Rollback tasks (#/rollbacks): DescribeReplaceRootVolumeTasks as the server scopes it (a
// member: its account's tasks; an administrator: every account's). Each task's volume,
// instance, snapshot, state and progress (snapvol's counters: blocks compared, bytes read and
// written), its safety snapshot and reason; reloaded while any task is pending or in
// progress. Tasks are started from a volume's page (Roll back volume in place) or the
// Instances page (Replace root volume): rollback_dialogs.tsx.

import { useState } from "preact/hooks";

import { describeRollbackTasks, taskRunning, type RollbackTask } from "../api/undo";
import { useSession } from "../context";
import { bytesText, CopyableId, DataTable, matchesSearch, SearchBox, sortRows, SortSelect, timeValue, Truncated, useSort, type Column } from "../list_view";
import { ErrorNote, Progress, StateBadge, Time, useLoader, useReloadWhile } from "../ui";

const kPollMs = 1000;

/** A task's counters in words: "3.00 MiB written, 16 MiB read, 32 blocks compared". */
export function TaskCounters({ task }: { task: RollbackTask }) {
  return (
    <span class="task-counters" data-testid="task-counters">
      <span data-testid="bytes-written" data-bytes={task.bytesWritten}>
        {bytesText(task.bytesWritten)} written
      </span>
      , {bytesText(task.bytesRead)} read, {task.blocksCompared.toLocaleString("en-US")} blocks compared
    </span>
  );
}

const snapLink = (id: string) =>
  id ? (
    <a href={`#/snapshot/${encodeURIComponent(id)}`}>
      <code>{id}</code>
    </a>
  ) : (
    <span class="muted">—</span>
  );

export function RollbacksPage() {
  const { creds, me } = useSession();
  const tasks = useLoader(() => describeRollbackTasks(creds), [creds]);
  const [search, setSearch] = useState("");
  const [stateFilter, setStateFilter] = useState("");
  const { sort, setSort, toggle } = useSort({ column: "started", dir: "descending" }, ["started", "completed"]);
  useReloadWhile(tasks, tasks.data?.some(taskRunning) ?? false, kPollMs);

  const columns: Column<RollbackTask>[] = [
    { id: "task", label: "Task", sort: (t) => t.taskId, render: (t) => <CopyableId id={t.taskId} /> },
    {
      id: "volume",
      label: "Volume",
      sort: (t) => t.volumeId,
      render: (t) => (
        <a href={`#/volume/${encodeURIComponent(t.volumeId)}`}>
          <code>{t.volumeId}</code>
        </a>
      ),
    },
    { id: "instance", label: "Instance", sort: (t) => t.instanceId, render: (t) => (t.instanceId ? <code>{t.instanceId}</code> : <span class="muted">not attached</span>) },
    { id: "snapshot", label: "Snapshot", sort: (t) => t.snapshotId, render: (t) => snapLink(t.snapshotId) },
    {
      id: "state",
      label: "State",
      sort: (t) => t.state,
      render: (t) => (
        <>
          <StateBadge state={t.state} />
          {t.forced ? <span class="badge">forced</span> : null}
          <Progress value={t.progress} label={`Progress of ${t.taskId}`} />
        </>
      ),
    },
    { id: "progress", label: "Written / read", sort: (t) => t.bytesWritten, render: (t) => <TaskCounters task={t} /> },
    { id: "safety", label: "Safety snapshot", render: (t) => snapLink(t.safetySnapshotId) },
    { id: "reason", label: "Reason", render: (t) => (t.reason ? <Truncated class="lv-desc" text={t.reason} /> : <span class="muted">—</span>) },
    { id: "started", label: "Started", sort: (t) => timeValue(t.startTime), render: (t) => <Time iso={t.startTime} /> },
    {
      id: "completed",
      label: "Completed",
      sort: (t) => timeValue(t.completeTime),
      render: (t) => (t.completeTime ? <Time iso={t.completeTime} /> : <span class="muted">—</span>),
    },
  ];
  const fields = (t: RollbackTask) => [t.taskId, t.volumeId, t.instanceId, t.snapshotId, t.state, t.safetySnapshotId, t.reason];
  const inScope = (tasks.data ?? []).filter((t) => !stateFilter || t.state === stateFilter);
  const matching = inScope.filter((t) => matchesSearch(search, fields(t)));
  const shown = sortRows(matching, columns, sort, (t) => t.taskId);

  return (
    <section aria-labelledby="rollbacks-title">
      <div class="page-head">
        <h1 id="rollbacks-title">Rollback tasks</h1>
        <button type="button" class="secondary" onClick={tasks.reload}>
          Refresh
        </button>
      </div>
      <p class="hint">
        {me.isAdmin
          ? "Volumes rolled back in place, for every team. Start one from a volume's page (Roll back volume in place) or from Instances (Replace root volume). Only blocks that differ from the snapshot are written."
          : "Your team's volumes rolled back in place. Rolling back is for administrators: file a restore request (in place) from a snapshot's Restore action."}
      </p>
      <div class="lv-controls">
        <label class="inline">
          <span>State</span>
          <select value={stateFilter} onChange={(e) => setStateFilter(e.currentTarget.value)}>
            <option value="">Any</option>
            {["pending", "in-progress", "succeeded", "failed", "failed-detached"].map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <SearchBox
          id="rollbacks-search"
          label="Search rollback tasks"
          value={search}
          onInput={setSearch}
          hint="Finds the text in task, volume, instance, snapshot and safety snapshot ids, the state and the reason."
          shown={matching.length}
          total={inScope.length}
        />
        {shown.length > 0 ? <SortSelect columns={columns} sort={sort} onChange={setSort} /> : null}
      </div>
      <ErrorNote error={tasks.error} />
      {tasks.loading && !tasks.data ? <p role="status">Loading rollback tasks…</p> : null}
      {tasks.data && shown.length === 0 ? <p class="empty">{search ? `No rollback task matches “${search}”.` : "No rollback tasks."}</p> : null}
      {shown.length > 0 ? (
        <DataTable
          label="Rollback tasks"
          columns={columns}
          rows={shown}
          rowKey={(t) => t.taskId}
          rowAttrs={(t) => ({ "data-task-id": t.taskId, "data-state": t.state, "data-volume-id": t.volumeId })}
          sort={sort}
          onSort={toggle}
        />
      ) : null}
    </section>
  );
}
