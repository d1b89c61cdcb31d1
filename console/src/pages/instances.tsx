// Instances and their volumes; "Create snapshots" takes all of an instance's volumes at once;
// administrators replace an instance's root volume from a snapshot (rollback_dialogs.tsx).

import { useState } from "preact/hooks";

import { describeInstances, tagValue, type Instance, type Snapshot } from "../api/ec2";
import { listAccountVolumes } from "../api/snapvol";
import { useSession } from "../context";
import { ErrorNote, ListTable, StateBadge, TagList, useLoader } from "../ui";
import { CreatedNotice, CreateSnapshotsDialog } from "./create_snapshot";
import { ReplaceRootDialog } from "./rollback_dialogs";

/** The instance's root volume (the device named rootDeviceName), "" when it has none. */
function rootVolume(i: Instance): string {
  return i.devices.find((d) => d.deviceName === i.rootDeviceName)?.volumeId ?? "";
}

export function InstancesPage() {
  const { creds, me } = useSession();
  const [replacing, setReplacing] = useState<{ instanceId: string; rootVolumeId: string; ownerId: string } | null>(null);
  // Administrators: their own instances and every account's that has a volume attached (found
  // through the accounts' volumes, then described by id), each root volume's account known.
  const instances = useLoader(async () => {
    const own = await describeInstances(creds);
    if (!me.isAdmin) return { list: own, owners: new Map<string, string>() };
    const volumes = await listAccountVolumes(creds, "all");
    const owners = new Map(volumes.map((v) => [v.volumeId, v.accountId]));
    const others = [...new Set(volumes.flatMap((v) => v.attachments.map((a) => a.instanceId)))].filter((id) => !own.some((i) => i.instanceId === id));
    return { list: [...own, ...(others.length ? await describeInstances(creds, others) : [])], owners };
  }, [creds]);
  const [target, setTarget] = useState<Instance | null>(null);
  const [created, setCreated] = useState<Snapshot[]>([]);
  return (
    <section aria-labelledby="instances-title">
      <div class="page-head">
        <h1 id="instances-title">Instances</h1>
        <button type="button" class="secondary" onClick={instances.reload}>
          Refresh
        </button>
      </div>
      <CreatedNotice snapshots={created} onDismiss={() => setCreated([])} />
      <ErrorNote error={instances.error} />
      <ListTable
        loading={instances.loading && !instances.data}
        rows={instances.data?.list}
        loadingText="Loading instances…"
        empty="This account has no instances."
        label="Instances"
        columns={["Instance", "State", "Volumes", "Tags", "Actions"]}
      >
        {(instances.data?.list ?? []).map((i) => (
          <tr key={i.instanceId} data-instance-id={i.instanceId}>
            <td data-label="Instance">
              <code>{i.instanceId}</code>
              {tagValue(i.tags, "Name") ? <div class="sub">{tagValue(i.tags, "Name")}</div> : null}
            </td>
            <td data-label="State">
              <StateBadge state={i.state} />
            </td>
            <td data-label="Volumes">
              {i.devices.length === 0 ? <span class="muted">none</span> : null}
              <ul class="plain">
                {i.devices.map((d) => (
                  <li key={d.deviceName}>
                    {d.deviceName} <code>{d.volumeId}</code>
                    {d.deviceName === i.rootDeviceName ? <span class="badge">boot</span> : null}
                  </li>
                ))}
              </ul>
            </td>
            <td data-label="Tags">
              <TagList tags={i.tags} />
            </td>
            <td data-label="Actions">
              <button type="button" onClick={() => setTarget(i)} aria-label={`Create snapshots of ${i.instanceId}`}>
                Create snapshots
              </button>
              {me.isAdmin && rootVolume(i) ? (
                <button
                  type="button"
                  class="secondary"
                  onClick={() =>
                    setReplacing({ instanceId: i.instanceId, rootVolumeId: rootVolume(i), ownerId: instances.data?.owners.get(rootVolume(i)) ?? me.accountId })
                  }
                  aria-label={`Replace root volume of ${i.instanceId}`}
                >
                  Replace root volume
                </button>
              ) : null}
            </td>
          </tr>
        ))}
      </ListTable>
      {replacing ? <ReplaceRootDialog {...replacing} onClose={() => setReplacing(null)} /> : null}
      {target ? (
        <CreateSnapshotsDialog
          instanceId={target.instanceId}
          instanceName={tagValue(target.tags, "Name")}
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
