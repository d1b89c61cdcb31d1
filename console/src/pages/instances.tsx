// Instances and their volumes; "Create snapshots" takes all of an instance's volumes at once.

import { useState } from "preact/hooks";

import { describeInstances, tagValue, type Instance, type Snapshot } from "../api/ec2";
import { useSession } from "../context";
import { ErrorNote, ListTable, StateBadge, TagList, useLoader } from "../ui";
import { CreatedNotice, CreateSnapshotsDialog } from "./create_snapshot";

export function InstancesPage() {
  const { creds } = useSession();
  const instances = useLoader(() => describeInstances(creds), [creds]);
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
        rows={instances.data}
        loadingText="Loading instances…"
        empty="This account has no instances."
        label="Instances"
        columns={["Instance", "State", "Volumes", "Tags", "Actions"]}
      >
        {(instances.data ?? []).map((i) => (
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
            </td>
          </tr>
        ))}
      </ListTable>
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
