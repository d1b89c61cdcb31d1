// Volumes of the account: size, state, instance, tags; "Create Snapshot" on each.

import { useState } from "preact/hooks";

import { describeInstances, describeVolumes, tagValue, type Snapshot, type Volume } from "../api/ec2";
import { useSession } from "../context";
import { ErrorNote, gib, ListTable, StateBadge, TagList, useLoader } from "../ui";
import { CreatedNotice, CreateSnapshotDialog } from "./create_snapshot";

export function VolumesPage() {
  const { creds } = useSession();
  const volumes = useLoader(() => describeVolumes(creds), [creds]);
  const instances = useLoader(() => describeInstances(creds), [creds]);
  const [target, setTarget] = useState<Volume | null>(null);
  const [created, setCreated] = useState<Snapshot[]>([]);
  const instanceName = (id: string) => tagValue(instances.data?.find((i) => i.instanceId === id)?.tags ?? [], "Name");

  return (
    <section aria-labelledby="volumes-title">
      <div class="page-head">
        <h1 id="volumes-title">Volumes</h1>
        <button type="button" class="secondary" onClick={volumes.reload}>
          Refresh
        </button>
      </div>
      <CreatedNotice snapshots={created} onDismiss={() => setCreated([])} />
      <ErrorNote error={volumes.error} />
      <ListTable
        loading={volumes.loading && !volumes.data}
        rows={volumes.data}
        loadingText="Loading volumes…"
        empty="This account has no volumes."
        label="Volumes"
        columns={["Volume", "Size", "State", "Instance", "Tags", "Actions"]}
      >
        {(volumes.data ?? []).map((v) => {
          const name = tagValue(v.tags, "Name");
          return (
            <tr key={v.volumeId} data-volume-id={v.volumeId}>
              <td data-label="Volume">
                <code>{v.volumeId}</code>
                {name ? <div class="sub">{name}</div> : null}
                {v.snapshotId ? <div class="sub">restored from {v.snapshotId}</div> : null}
              </td>
              <td data-label="Size" class="nowrap">{gib(v.size)}</td>
              <td data-label="State">
                <StateBadge state={v.status} />
              </td>
              <td data-label="Instance">
                {v.attachments.length === 0 ? <span class="muted">not attached</span> : null}
                {v.attachments.map((a) => (
                  <div key={a.instanceId + a.device}>
                    <code>{a.instanceId}</code> {a.device}
                    {instanceName(a.instanceId) ? <div class="sub">{instanceName(a.instanceId)}</div> : null}
                  </div>
                ))}
              </td>
              <td data-label="Tags">
                <TagList tags={v.tags} />
              </td>
              <td data-label="Actions">
                <button type="button" onClick={() => setTarget(v)} aria-label={`Create Snapshot of ${v.volumeId}`}>
                  Create Snapshot
                </button>
              </td>
            </tr>
          );
        })}
      </ListTable>
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
