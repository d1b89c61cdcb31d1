// The AWS SDK for JavaScript v3 (@aws-sdk/client-ec2) against a live snapvold: commands,
// waiters and paginators, asserting EC2's documented behaviour. Run with
//   node --test --test-reporter=spec tests/clients/js/ec2.test.mjs
// after `npm ci` in tests/clients/js (ctest's clients_js_deps does it).
//
// Set-up: team-1 with an instance web-1 (web-1-root at /dev/xvda, boot; web-1-data at
// /dev/xvdf) and an unattached volume `spare`; account `pager` with one volume for the
// snapshot paginator and 11 more volumes for the volume paginator.
//
// A failing test's message ends with the last raw requests and the daemon's answers.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  CreateSnapshotCommand,
  CreateTagsCommand,
  CreateVolumeCommand,
  DeleteTagsCommand,
  DeleteVolumeCommand,
  DescribeSnapshotsCommand,
  DescribeTagsCommand,
  DescribeVolumesCommand,
  paginateDescribeSnapshots,
  paginateDescribeVolumes,
  waitUntilSnapshotCompleted,
  waitUntilVolumeAvailable,
  waitUntilVolumeDeleted,
} from "@aws-sdk/client-ec2";

import { REGION, Service } from "./harness.mjs";

const SNAP_ID = /^snap-[0-9a-f]{17}$/;
const VOL_ID = /^vol-[0-9a-f]{17}$/;
const T0 = Date.now();

const svc = new Service();
let ec2; // team-1
let pager; // account "pager"
let instanceId;
let root, data, spare;
let pagerVolume;
const pagerVolumes = [];

// A resource's tags as the user set them: a volume's aws:snapvol:host and aws:snapvol:nbd (where it
// lives, docs/api.md) are checked apart, in "a volume says where it lives".
const kWhereTags = ["aws:snapvol:host", "aws:snapvol:nbd"];
const tagsOf = (item) =>
  Object.fromEntries((item.Tags ?? []).filter((t) => !kWhereTags.includes(t.Key)).map((t) => [t.Key, t.Value]));
const tagList = (obj) => Object.entries(obj).map(([Key, Value]) => ({ Key, Value }));
const sorted = (a) => [...a].sort();

/** Rethrows `e` with the daemon's last answers appended (assertion diffs kept as JSON). */
function withExchanges(e) {
  const parts = [e.message];
  if (e.code === "ERR_ASSERTION" && e.operator !== "==") {
    parts.push(`actual:   ${JSON.stringify(e.actual)}`, `expected: ${JSON.stringify(e.expected)}`);
  }
  parts.push("--- last exchanges with snapvold ---", svc.lastExchanges());
  const w = new Error(parts.join("\n"));
  w.name = e.name;
  // Where it failed in this file, not where it was wrapped.
  const frames = (e.stack ?? "").split("\n").filter((l) => l.includes("ec2.test.mjs")).slice(0, 2);
  w.stack = `${w.name}: ${w.message}\n${frames.join("\n")}`;
  return w;
}

/** A top-level test; `body(t)` may add independent cases with sub(t, name, fn). */
function check(name, body, timeout = 60_000) {
  test(name, { timeout }, async (t) => {
    const started = Date.now();
    try {
      await body(t);
    } catch (e) {
      throw withExchanges(e);
    } finally {
      console.log(`# ${name}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
  });
}

/** An independent case inside a test: its failure is reported on its own and the others still run. */
function sub(t, name, fn) {
  return t.test(name, async () => {
    try {
      await fn();
    } catch (e) {
      throw withExchanges(e);
    }
  });
}

async function snapshotTags(client, id) {
  const out = await client.send(new DescribeSnapshotsCommand({ SnapshotIds: [id] }));
  assert.deepEqual(out.Snapshots.map((s) => s.SnapshotId), [id]);
  return tagsOf(out.Snapshots[0]);
}

async function createSnapshot(client, volumeId, tags, description = "") {
  const params = { VolumeId: volumeId, Description: description };
  if (tags && Object.keys(tags).length) params.TagSpecifications = [{ ResourceType: "snapshot", Tags: tagList(tags) }];
  const out = await client.send(new CreateSnapshotCommand(params));
  assert.match(out.SnapshotId, SNAP_ID);
  return out.SnapshotId;
}

async function waitCompleted(client, ids) {
  const r = await waitUntilSnapshotCompleted({ client, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { SnapshotIds: ids });
  assert.equal(r.state, "SUCCESS", JSON.stringify(r));
}

before(async () => {
  await svc.start();
  svc.addAccount("team-1");
  svc.addAccount("pager");
  instanceId = svc.addInstance("team-1", "web-1");
  root = svc.addVolume("team-1", "web-1-root", { seed: 2, instance: "web-1", device: "/dev/xvda", boot: true });
  data = svc.addVolume("team-1", "web-1-data", { seed: 7, instance: "web-1", device: "/dev/xvdf" });
  spare = svc.addVolume("team-1", "spare", { seed: 5 });
  pagerVolume = svc.addVolume("pager", "pager-0", { seed: 11, size: "1M" });
  pagerVolumes.push(pagerVolume);
  for (let i = 1; i <= 11; i++) pagerVolumes.push(svc.addVolume("pager", `pager-${i}`, { seed: 11 + i, size: "1M" }));
  ec2 = svc.client("team-1");
  pager = svc.client("pager");
});

after(async () => {
  ec2?.destroy();
  pager?.destroy();
  const code = await svc.stop();
  if (code !== 0) console.log(`snapvold exited ${code} after SIGTERM\n${svc.logTail()}`);
  svc.cleanup();
  console.log(`# ec2.test.mjs: ${((Date.now() - T0) / 1000).toFixed(1)} s in all`);
  assert.equal(code, 0, "snapvold must exit 0 after SIGTERM");
});

check("CreateSnapshot with TagSpecifications, then waitUntilSnapshotCompleted", async (t) => {
  const out = await ec2.send(
    new CreateSnapshotCommand({
      VolumeId: data,
      Description: "js sdk",
      TagSpecifications: [{ ResourceType: "snapshot", Tags: tagList({ Name: "js-first", Owner: "team-1" }) }],
    }),
  );
  assert.match(out.SnapshotId, SNAP_ID);
  await sub(t, "the CreateSnapshot answer", () => {
    assert.ok(out.StartTime instanceof Date && !Number.isNaN(out.StartTime.getTime()), `StartTime ${out.StartTime}`);
    assert.ok(["pending", "completed"].includes(out.State), `State ${out.State}`);
    assert.deepEqual(
      { VolumeId: out.VolumeId, Description: out.Description, OwnerId: out.OwnerId, VolumeSize: out.VolumeSize, Encrypted: out.Encrypted, Tags: tagsOf(out) },
      { VolumeId: data, Description: "js sdk", OwnerId: svc.accounts["team-1"].accountId, VolumeSize: 1, Encrypted: false, Tags: { Name: "js-first", Owner: "team-1" } },
    );
  });
  await sub(t, "waitUntilSnapshotCompleted, then DescribeSnapshots", async () => {
    await waitCompleted(ec2, [out.SnapshotId]);
    const d = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [out.SnapshotId] }));
    assert.equal(d.Snapshots.length, 1);
    const s = d.Snapshots[0];
    assert.deepEqual(
      { State: s.State, Progress: s.Progress, VolumeId: s.VolumeId, Description: s.Description, Tags: tagsOf(s) },
      { State: "completed", Progress: "100%", VolumeId: data, Description: "js sdk", Tags: { Name: "js-first", Owner: "team-1" } },
    );
  });
});

check("CreateSnapshot without tags answers an empty tagSet", async () => {
  const out = await ec2.send(new CreateSnapshotCommand({ VolumeId: spare }));
  assert.match(out.SnapshotId, SNAP_ID);
  // EC2 answers <tagSet/> (the SDK parses it as []); clients such as Ansible's ec2_snapshot read Tags unconditionally.
  assert.deepEqual(out.Tags, [], `CreateSnapshot without TagSpecifications: Tags is ${JSON.stringify(out.Tags)}, expected []`);
  await waitCompleted(ec2, [out.SnapshotId]);
});

check("paginateDescribeSnapshots with MaxResults 5 over 12 snapshots returns each exactly once", async (t) => {
  const ids = [];
  for (let i = 0; i < 12; i++) ids.push(await createSnapshot(pager, pagerVolume, { batch: "pager", n: String(i) }, `page ${i}`));
  await waitCompleted(pager, ids);

  for (const [label, input] of [
    ["OwnerIds self", { OwnerIds: ["self"], MaxResults: 5 }],
    ["Filters tag:batch", { Filters: [{ Name: "tag:batch", Values: ["pager"] }], MaxResults: 5 }],
    ["Filters volume-id", { Filters: [{ Name: "volume-id", Values: [pagerVolume] }], MaxResults: 5 }],
  ]) {
    await sub(t, label, async () => {
      const seen = [];
      let pages = 0;
      for await (const page of paginateDescribeSnapshots({ client: pager, pageSize: 5 }, input)) {
        pages++;
        assert.ok(page.Snapshots.length <= 5, `${label}: page ${pages} has ${page.Snapshots.length} snapshots (MaxResults 5)`);
        seen.push(...page.Snapshots.map((s) => s.SnapshotId));
        assert.ok(pages <= 10, `${label}: more than 10 pages for 12 snapshots`);
      }
      assert.deepEqual(sorted(seen), sorted(ids), `${label}: every snapshot exactly once`);
      assert.ok(pages >= 3, `${label}: ${pages} pages for 12 snapshots at MaxResults 5`);
    });
  }
});

check("DescribeSnapshots with Filters tag:Name and tag-key", async (t) => {
  const a = await createSnapshot(ec2, root, { Name: "alpha", Env: "prod" }, "a");
  const b = await createSnapshot(ec2, root, { Name: "beta" }, "b");
  const c = await createSnapshot(ec2, data, { Env: "dev" }, "c");
  await waitCompleted(ec2, [a, b, c]);
  const q = async (filters) =>
    sorted((await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ["self"], Filters: filters }))).Snapshots.map((s) => s.SnapshotId));
  const cases = [
    ["tag:Name=alpha", [{ Name: "tag:Name", Values: ["alpha"] }], [a]],
    ["tag:Name=alpha|beta", [{ Name: "tag:Name", Values: ["alpha", "beta"] }], [a, b]],
    ["tag:Name=al* (wildcard)", [{ Name: "tag:Name", Values: ["al*"] }], [a]],
    ["tag-key=Env", [{ Name: "tag-key", Values: ["Env"] }], [a, c]],
    ["tag-key=Env AND tag:Name=alpha|beta", [{ Name: "tag-key", Values: ["Env"] }, { Name: "tag:Name", Values: ["alpha", "beta"] }], [a]],
    ["tag:Env=dev", [{ Name: "tag:Env", Values: ["dev"] }], [c]],
    ["tag:Name=gamma", [{ Name: "tag:Name", Values: ["gamma"] }], []],
  ];
  for (const [label, filters, want] of cases) await sub(t, label, async () => assert.deepEqual(await q(filters), sorted(want), label));
});

check("CreateTags and DeleteTags on snapshots (Value \"\" = only if empty; no Tags = all)", async (t) => {
  const start = { Name: "tagged", k1: "v1", k2: "", k3: "v3" };
  const fresh = async () => {
    const id = await createSnapshot(ec2, spare, start);
    assert.deepEqual(await snapshotTags(ec2, id), start, "the snapshot's tags from TagSpecifications");
    return id;
  };
  const ids = [];
  for (let i = 0; i < 8; i++) ids.push(await fresh());
  await waitCompleted(ec2, ids);

  await sub(t, "CreateTags adds tags (also with an empty value) and overwrites a value", async () => {
    const id = ids[0];
    await ec2.send(new CreateTagsCommand({ Resources: [id], Tags: tagList({ k4: "v4", k5: "" }) }));
    assert.deepEqual(await snapshotTags(ec2, id), { ...start, k4: "v4", k5: "" });
    await ec2.send(new CreateTagsCommand({ Resources: [id], Tags: tagList({ k4: "v4b", k1: "" }) }));
    assert.deepEqual(await snapshotTags(ec2, id), { ...start, k1: "", k4: "v4b", k5: "" });
  });
  const cases = [
    ["DeleteTags k1=other keeps k1=v1 (value must match)", [{ Key: "k1", Value: "other" }], start],
    ["DeleteTags k1=v1 deletes k1", [{ Key: "k1", Value: "v1" }], { Name: "tagged", k2: "", k3: "v3" }],
    ['DeleteTags k3 with Value "" keeps k3=v3 (only if its value is empty)', [{ Key: "k3", Value: "" }], start],
    ['DeleteTags k2 with Value "" deletes k2=""', [{ Key: "k2", Value: "" }], { Name: "tagged", k1: "v1", k3: "v3" }],
    ["DeleteTags k3 without Value deletes it whatever its value", [{ Key: "k3" }], { Name: "tagged", k1: "v1", k2: "" }],
    ["DeleteTags of a key the snapshot lacks changes nothing", [{ Key: "nope" }], start],
    ["DeleteTags without Tags deletes all tags", undefined, {}],
  ];
  for (const [i, [label, tags, want]] of cases.entries()) {
    await sub(t, label, async () => {
      const id = ids[i + 1];
      const input = { Resources: [id] };
      if (tags) input.Tags = tags;
      await ec2.send(new DeleteTagsCommand(input));
      assert.deepEqual(await snapshotTags(ec2, id), want, label);
    });
  }
});

check("CreateTags and DeleteTags on a volume, and on a snapshot and a volume in one call", async (t) => {
  const vols = async () => tagsOf((await ec2.send(new DescribeVolumesCommand({ VolumeIds: [spare] }))).Volumes[0]);
  await sub(t, "a registered volume's name is its Name tag", async () => {
    const out = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [spare] }));
    assert.deepEqual(out.Volumes.map((v) => v.VolumeId), [spare]);
    assert.deepEqual(tagsOf(out.Volumes[0]), { Name: "spare" });
  });
  await sub(t, "CreateTags on a volume", async () => {
    await ec2.send(new CreateTagsCommand({ Resources: [spare], Tags: tagList({ Team: "a", Tier: "" }) }));
    assert.deepEqual(await vols(), { Name: "spare", Team: "a", Tier: "" });
  });
  const snap = await createSnapshot(ec2, spare, { Name: "mixed" });
  await waitCompleted(ec2, [snap]);
  await sub(t, "CreateTags and DeleteTags on a snapshot and a volume in one call", async () => {
    await ec2.send(new CreateTagsCommand({ Resources: [snap, spare], Tags: tagList({ Both: "yes" }) }));
    assert.deepEqual(await vols(), { Name: "spare", Team: "a", Tier: "", Both: "yes" });
    assert.deepEqual(await snapshotTags(ec2, snap), { Name: "mixed", Both: "yes" });
    await ec2.send(new DeleteTagsCommand({ Resources: [snap, spare], Tags: [{ Key: "Both" }] }));
    assert.deepEqual(await vols(), { Name: "spare", Team: "a", Tier: "" });
    assert.deepEqual(await snapshotTags(ec2, snap), { Name: "mixed" });
  });
  await sub(t, 'DeleteTags on a volume: Tier="" deletes Tier=""; Team=b keeps Team=a', async () => {
    await ec2.send(new DeleteTagsCommand({ Resources: [spare], Tags: [{ Key: "Tier", Value: "" }, { Key: "Team", Value: "b" }] }));
    assert.deepEqual(await vols(), { Name: "spare", Team: "a" });
  });
});

check("a volume says where it lives: aws:snapvol:host, seen by tag filters", async () => {
  const out = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [spare] }));
  const host = (out.Volumes[0].Tags ?? []).find((t) => t.Key === "aws:snapvol:host");
  assert.ok(host && host.Value, JSON.stringify(out.Volumes[0].Tags));
  const found = await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: "tag:aws:snapvol:host", Values: [host.Value] }] }));
  assert.ok(found.Volumes.some((v) => v.VolumeId === spare));
});

check("DescribeVolumes with Filters volume-id, attachment.device, tag:Name", async (t) => {
  const q = async (input) => sorted((await ec2.send(new DescribeVolumesCommand(input))).Volumes.map((v) => v.VolumeId));
  const cases = [
    ["volume-id=data", [{ Name: "volume-id", Values: [data] }], [data]],
    ["volume-id=root|spare", [{ Name: "volume-id", Values: [root, spare] }], [root, spare]],
    ["attachment.device=/dev/xvdf", [{ Name: "attachment.device", Values: ["/dev/xvdf"] }], [data]],
    ["attachment.instance-id AND attachment.device=/dev/xvda",
      [{ Name: "attachment.instance-id", Values: [instanceId] }, { Name: "attachment.device", Values: ["/dev/xvda"] }], [root]],
    ["attachment.instance-id", [{ Name: "attachment.instance-id", Values: [instanceId] }], [root, data]],
    ["tag:Name=web-1-data", [{ Name: "tag:Name", Values: ["web-1-data"] }], [data]],
    ["tag:Name=nothing-by-this-name", [{ Name: "tag:Name", Values: ["nothing-by-this-name"] }], []],
    ["status=in-use", [{ Name: "status", Values: ["in-use"] }], [root, data]],
  ];
  for (const [label, filters, want] of cases) await sub(t, label, async () => assert.deepEqual(await q({ Filters: filters }), sorted(want), label));

  await sub(t, "the fields of an attached volume (VolumeIds=[data])", async () => {
    const out = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [data] }));
    assert.deepEqual(out.Volumes.map((v) => v.VolumeId), [data]);
    const v = out.Volumes[0];
    const a = v.Attachments?.[0] ?? {};
    assert.deepEqual(
      {
        Size: v.Size, State: v.State, Encrypted: v.Encrypted, SnapshotId: v.SnapshotId,
        AvailabilityZoneInRegion: v.AvailabilityZone?.startsWith(REGION), CreateTimeIsDate: v.CreateTime instanceof Date,
        HasVolumeType: Boolean(v.VolumeType), Tags: tagsOf(v), Attachments: v.Attachments?.length,
        Attachment: { VolumeId: a.VolumeId, InstanceId: a.InstanceId, Device: a.Device, State: a.State,
          AttachTimeIsDate: a.AttachTime instanceof Date, DeleteOnTermination: typeof a.DeleteOnTermination },
      },
      {
        Size: 1, State: "in-use", Encrypted: false, SnapshotId: "",
        AvailabilityZoneInRegion: true, CreateTimeIsDate: true,
        HasVolumeType: true, Tags: { Name: "web-1-data" }, Attachments: 1,
        Attachment: { VolumeId: data, InstanceId: instanceId, Device: "/dev/xvdf", State: "attached",
          AttachTimeIsDate: true, DeleteOnTermination: "boolean" },
      },
    );
  });
});

check("paginateDescribeVolumes with MaxResults 5 over 12 volumes returns each exactly once", async (t) => {
  for (const [label, input] of [
    ["no filter", { MaxResults: 5 }],
    ["Filters status=available", { Filters: [{ Name: "status", Values: ["available"] }], MaxResults: 5 }],
  ]) {
    await sub(t, label, async () => {
      const seen = [];
      let pages = 0;
      for await (const page of paginateDescribeVolumes({ client: pager, pageSize: 5 }, input)) {
        pages++;
        assert.ok(page.Volumes.length <= 5, `${label}: page ${pages} has ${page.Volumes.length} volumes (MaxResults 5)`);
        seen.push(...page.Volumes.map((v) => v.VolumeId));
        assert.ok(pages <= 10, `${label}: more than 10 pages for 12 volumes`);
      }
      assert.deepEqual(sorted(seen), sorted(pagerVolumes), `${label}: every volume exactly once`);
      assert.ok(pages >= 3, `${label}: ${pages} pages for 12 volumes at MaxResults 5`);
    });
  }
});

check("DescribeTags with Filters resource-type", async (t) => {
  const snap = await createSnapshot(ec2, root, { Kind: "describe-tags" });
  await waitCompleted(ec2, [snap]);
  const q = async (filters) => (await ec2.send(new DescribeTagsCommand({ Filters: filters }))).Tags;
  const show = (tags) => tags.map((x) => `${x.ResourceType} ${x.ResourceId} ${x.Key}=${x.Value}`).sort();

  await sub(t, "resource-type=snapshot", async () => {
    const snaps = await q([{ Name: "resource-type", Values: ["snapshot"] }]);
    assert.deepEqual([...new Set(snaps.map((x) => x.ResourceType))], ["snapshot"], "only snapshots");
    assert.ok(show(snaps).includes(`snapshot ${snap} Kind=describe-tags`), `the snapshot's Kind tag in ${JSON.stringify(show(snaps))}`);
  });
  await sub(t, "resource-type=volume (a registered volume's Name tag)", async () => {
    const vols = await q([{ Name: "resource-type", Values: ["volume"] }]);
    assert.deepEqual([...new Set(vols.map((x) => x.ResourceType))], ["volume"], `only volumes: ${JSON.stringify(show(vols))}`);
    assert.ok(show(vols).includes(`volume ${data} Name=web-1-data`), `the data volume's Name tag in ${JSON.stringify(show(vols))}`);
  });
  await sub(t, "resource-type=snapshot|volume AND key=Kind", async () => {
    await ec2.send(new CreateTagsCommand({ Resources: [data], Tags: tagList({ Kind: "describe-tags" }) }));
    const both = await q([{ Name: "resource-type", Values: ["snapshot", "volume"] }, { Name: "key", Values: ["Kind"] }]);
    assert.deepEqual(show(both), [`snapshot ${snap} Kind=describe-tags`, `volume ${data} Kind=describe-tags`].sort());
  });
  await sub(t, "resource-type=instance AND resource-id", async () => {
    const inst = await q([{ Name: "resource-type", Values: ["instance"] }, { Name: "resource-id", Values: [instanceId] }]);
    assert.deepEqual(show(inst), [`instance ${instanceId} Name=web-1`]);
  });
});

check("CreateVolume refuses a volume type it does not offer (gp3), by name, and creates nothing", async () => {
  const before = (await ec2.send(new DescribeVolumesCommand({}))).Volumes.length;
  await assert.rejects(
    ec2.send(new CreateVolumeCommand({ AvailabilityZone: "us-east-1a", Size: 1, VolumeType: "gp3" })),
    (e) => e.name === "InvalidParameterValue" && /volumeType/.test(e.message),
  );
  assert.equal((await ec2.send(new DescribeVolumesCommand({}))).Volumes.length, before);
});

check("CreateVolume with TagSpecifications, waitUntilVolumeAvailable, DeleteVolume, waitUntilVolumeDeleted", async (t) => {
  const out = await ec2.send(
    new CreateVolumeCommand({
      AvailabilityZone: "us-east-1a",
      Size: 1,
      VolumeType: "gp2",
      TagSpecifications: [{ ResourceType: "volume", Tags: tagList({ Name: "js-scratch", Owner: "team-1" }) }],
    }),
  );
  assert.match(out.VolumeId, VOL_ID);
  await sub(t, "the CreateVolume answer", () => {
    assert.ok(["creating", "available"].includes(out.State), `State ${out.State}`);
    assert.deepEqual(
      { Size: out.Size, AvailabilityZone: out.AvailabilityZone, VolumeType: out.VolumeType, Tags: tagsOf(out) },
      { Size: 1, AvailabilityZone: "us-east-1a", VolumeType: "gp2", Tags: { Name: "js-scratch", Owner: "team-1" } },
    );
  });
  await sub(t, "waitUntilVolumeAvailable, then DescribeVolumes", async () => {
    const r = await waitUntilVolumeAvailable({ client: ec2, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { VolumeIds: [out.VolumeId] });
    assert.equal(r.state, "SUCCESS", JSON.stringify(r));
    const v = (await ec2.send(new DescribeVolumesCommand({ VolumeIds: [out.VolumeId] }))).Volumes[0];
    assert.deepEqual(
      { State: v.State, AvailabilityZone: v.AvailabilityZone, Size: v.Size, Attachments: v.Attachments, Tags: tagsOf(v) },
      { State: "available", AvailabilityZone: "us-east-1a", Size: 1, Attachments: [], Tags: { Name: "js-scratch", Owner: "team-1" } },
    );
  });
  await sub(t, "DescribeVolumes tag:Name=js-scratch", async () => {
    const byName = await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: "tag:Name", Values: ["js-scratch"] }] }));
    assert.deepEqual(byName.Volumes.map((x) => x.VolumeId), [out.VolumeId], "tag:Name=js-scratch");
  });
  await sub(t, "DeleteVolume, then waitUntilVolumeDeleted", async () => {
    await ec2.send(new DeleteVolumeCommand({ VolumeId: out.VolumeId }));
    const d = await waitUntilVolumeDeleted({ client: ec2, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { VolumeIds: [out.VolumeId] });
    assert.equal(d.state, "SUCCESS", JSON.stringify(d));
  });
});
