// Volumes: a member's own (EC2 DescribeVolumes); for administrators every account's or one
// account's (GET /api/v1/volumes, with the exact size in bytes), with an Account column.
// Sortable (newest first), searchable; "Create Snapshot" on each.

import { useState } from "preact/hooks";

import { AccountName, useAccountDirectory } from "../account_names";
import { describeInstances, describeVolumes, tagValue, type Snapshot, type Tag, type Volume } from "../api/ec2";
import { listAccountVolumes, type AccountVolume } from "../api/snapvol";
import { useSession } from "../context";
import {
  AccountSwitcher,
  bytesText,
  CopyableId,
  DataTable,
  GibUpperBound,
  matchesSearch,
  SearchBox,
  sortRows,
  SortSelect,
  timeValue,
  TruncatedTags,
  useSort,
  type Column,
} from "../list_view";
import { ErrorNote, StateBadge, Time, useLoader } from "../ui";
import { CreatedNotice, CreateSnapshotDialog } from "./create_snapshot";

/** One row: what EC2 says, plus the account and exact bytes when the JSON API gave them. */
interface VolumeRow {
  volumeId: string;
  accountId: string;
  sizeGiB: number;
  sizeBytes: number | undefined;
  snapshotId: string;
  state: string;
  createTime: string;
  attachments: { instanceId: string; device: string }[];
  tags: Tag[];
}

const fromEc2 = (v: Volume, accountId: string): VolumeRow => ({
  volumeId: v.volumeId,
  accountId,
  sizeGiB: v.size,
  sizeBytes: undefined,
  snapshotId: v.snapshotId,
  state: v.status,
  createTime: v.createTime,
  attachments: v.attachments,
  tags: v.tags,
});

const fromJson = (v: AccountVolume): VolumeRow => ({
  volumeId: v.volumeId,
  accountId: v.accountId,
  sizeGiB: v.sizeGiB,
  sizeBytes: v.sizeBytes,
  snapshotId: v.snapshotId,
  state: v.state,
  createTime: v.createTime,
  attachments: v.attachments,
  tags: v.tags,
});

export function VolumesPage() {
  const { creds, me } = useSession();
  const { names } = useAccountDirectory();
  const [account, setAccount] = useState("all");
  const volumes = useLoader<VolumeRow[]>(
    async () =>
      me.isAdmin ? (await listAccountVolumes(creds, account)).map(fromJson) : (await describeVolumes(creds)).map((v) => fromEc2(v, me.accountId)),
    [creds, me.isAdmin, account],
  );
  const instances = useLoader(() => describeInstances(creds), [creds]);
  const [target, setTarget] = useState<VolumeRow | null>(null);
  const [created, setCreated] = useState<Snapshot[]>([]);
  const [search, setSearch] = useState("");
  const { sort, setSort, toggle } = useSort({ column: "created", dir: "descending" }, ["created", "size"]);
  const instanceName = (id: string) => tagValue(instances.data?.find((i) => i.instanceId === id)?.tags ?? [], "Name");

  const columns: Column<VolumeRow>[] = [
    {
      id: "volume",
      label: "Volume",
      sort: (v) => v.volumeId,
      render: (v) => (
        <>
          <CopyableId id={v.volumeId} />
          {tagValue(v.tags, "Name") ? <div class="sub lv-trunc" title={tagValue(v.tags, "Name")}>{tagValue(v.tags, "Name")}</div> : null}
          {v.snapshotId ? <div class="sub">restored from {v.snapshotId}</div> : null}
        </>
      ),
    },
    ...(me.isAdmin
      ? [{ id: "account", label: "Account", sort: (v: VolumeRow) => names.get(v.accountId) ?? v.accountId, render: (v: VolumeRow) => <AccountName id={v.accountId} /> }]
      : []),
    {
      id: "size",
      label: "Size",
      class: "nowrap",
      sort: (v) => v.sizeBytes ?? v.sizeGiB * 2 ** 30,
      render: (v) => (v.sizeBytes !== undefined ? <span title={`${v.sizeBytes.toLocaleString("en-US")} bytes`}>{bytesText(v.sizeBytes)}</span> : <GibUpperBound gib={v.sizeGiB} />),
    },
    { id: "state", label: "State", sort: (v) => v.state, render: (v) => <StateBadge state={v.state} /> },
    { id: "created", label: "Created", sort: (v) => timeValue(v.createTime), render: (v) => <Time iso={v.createTime} /> },
    {
      id: "instance",
      label: "Instance",
      sort: (v) => v.attachments[0]?.instanceId ?? "",
      render: (v) => (
        <>
          {v.attachments.length === 0 ? <span class="muted">not attached</span> : null}
          {v.attachments.map((a) => (
            <div key={a.instanceId + a.device}>
              <code>{a.instanceId}</code> {a.device}
              {instanceName(a.instanceId) ? <div class="sub">{instanceName(a.instanceId)}</div> : null}
            </div>
          ))}
        </>
      ),
    },
    { id: "tags", label: "Tags", render: (v) => <TruncatedTags tags={v.tags} /> },
    {
      id: "actions",
      label: "Actions",
      render: (v) => (
        <button type="button" onClick={() => setTarget(v)} aria-label={`Create Snapshot of ${v.volumeId}`}>
          Create Snapshot
        </button>
      ),
    },
  ];

  const fields = (v: VolumeRow) => {
    const f = [v.volumeId, v.state, v.snapshotId];
    if (me.isAdmin) f.push(v.accountId, names.get(v.accountId) ?? "");
    for (const a of v.attachments) f.push(a.instanceId, a.device, instanceName(a.instanceId));
    for (const t of v.tags) f.push(t.key, t.value, `${t.key}=${t.value}`);
    return f;
  };
  const loaded = volumes.data;
  const matching = (loaded ?? []).filter((v) => matchesSearch(search, fields(v)));
  const shown = sortRows(matching, columns, sort, (v) => v.volumeId);

  return (
    <section aria-labelledby="volumes-title">
      <div class="page-head">
        <h1 id="volumes-title">Volumes</h1>
        <button type="button" class="secondary" onClick={volumes.reload}>
          Refresh
        </button>
      </div>
      <div class="lv-controls">
        <AccountSwitcher id="volumes-account" value={account} onChange={setAccount} />
        <SearchBox
          id="volume-search"
          label="Search volumes"
          value={search}
          onInput={setSearch}
          hint={`Finds the text anywhere (upper and lower case alike) in what each row shows: volume id and Name, ${
            me.isAdmin ? "account alias and id, " : ""
          }state, the snapshot it was restored from, instance id, device and name, tag keys and values.`}
          shown={matching.length}
          total={loaded?.length ?? 0}
        />
        {shown.length > 0 ? <SortSelect columns={columns} sort={sort} onChange={setSort} /> : null}
      </div>
      <CreatedNotice snapshots={created} onDismiss={() => setCreated([])} />
      <ErrorNote error={volumes.error} />
      {volumes.loading && !loaded ? <p role="status">Loading volumes…</p> : null}
      {loaded && shown.length === 0 ? (
        <p class="empty">{search ? `No volume matches “${search}”.` : me.isAdmin ? "No volumes in this selection." : "This account has no volumes."}</p>
      ) : null}
      {shown.length > 0 ? (
        <DataTable
          label="Volumes"
          columns={columns}
          rows={shown}
          rowKey={(v) => v.volumeId}
          rowAttrs={(v) => ({ "data-volume-id": v.volumeId, "data-account-id": v.accountId })}
          sort={sort}
          onSort={toggle}
        />
      ) : null}
      {target ? (
        <CreateSnapshotDialog
          volumeId={target.volumeId}
          volumeName={tagValue(target.tags, "Name")}
          onClose={() => setTarget(null)}
          onCreated={(s) => {
            setTarget(null);
            setCreated(s);
          }}
        />
      ) : null}
    </section>
  );
}
