// The EC2 Query API (POST / with a form body, service `ec2`): requests, XML parsing with
// DOMParser, and the shapes the console shows.

import { ApiError, apiFailure } from "./errors";
import type { Credentials } from "./session";
import { encodeForm, signedFetch } from "./sign";

export const kEc2Version = "2016-11-15";

export interface Tag {
  key: string;
  value: string;
}

export interface Snapshot {
  snapshotId: string;
  volumeId: string;
  status: string;
  statusMessage: string;
  startTime: string;
  progress: string;
  ownerId: string;
  ownerAlias: string;
  volumeSize: number;
  description: string;
  encrypted: boolean;
  tags: Tag[];
  /** How the snapshot was cut (snapvol's member `consistency`, e.g. "point-in-time (reflink)"
   *  or "crash-unsafe (read while running); …"); empty from a server that does not say. */
  consistency: string;
  /** How its changed blocks were found (snapvol's member `changedBlocks`). */
  changedBlocks: string;
}

export interface VolumeAttachment {
  instanceId: string;
  device: string;
  status: string;
}

export interface Volume {
  volumeId: string;
  size: number;
  snapshotId: string;
  status: string;
  createTime: string;
  attachments: VolumeAttachment[];
  tags: Tag[];
}

export interface InstanceDevice {
  deviceName: string;
  volumeId: string;
}

export interface Instance {
  instanceId: string;
  state: string;
  rootDeviceName: string;
  devices: InstanceDevice[];
  tags: Tag[];
}

export type Params = Record<string, string | undefined>;

/** Sends `action` with `params` (undefined values left out) and returns the response's root
 *  element. Rejects with ApiError carrying the EC2 error Code and Message as the server sent them. */
export async function ec2(creds: Credentials, action: string, params: Params = {}): Promise<Element> {
  const form: Record<string, string> = { Action: action, Version: kEc2Version };
  for (const [k, v] of Object.entries(params)) if (v !== undefined) form[k] = v;
  const res = await signedFetch(creds, "ec2", {
    method: "POST",
    path: "/",
    body: encodeForm(form),
    contentType: "application/x-www-form-urlencoded; charset=utf-8",
  });
  const text = await res.text();
  const doc = parseXml(text);
  const err = doc?.getElementsByTagName("Error")[0];
  if (!res.ok || err) {
    if (err) throw apiFailure(childText(err, "Code") || `HTTP${res.status}`, childText(err, "Message"), res);
    throw apiFailure(`HTTP${res.status}`, text.trim().slice(0, 300) || res.statusText, res);
  }
  if (!doc) throw new ApiError("InvalidResponse", `The server's answer to ${action} is not XML.`, res.status);
  return doc.documentElement;
}

function parseXml(text: string): Document | null {
  if (!text.trim().startsWith("<")) return null;
  const doc = new DOMParser().parseFromString(text, "application/xml");
  if (doc.getElementsByTagName("parsererror").length > 0) return null;
  return doc;
}

/** The first direct child element called `name`. */
export function child(el: Element | null | undefined, name: string): Element | null {
  if (!el) return null;
  for (const c of Array.from(el.children)) if (c.localName === name) return c;
  return null;
}

export function childText(el: Element | null | undefined, name: string): string {
  return child(el, name)?.textContent ?? "";
}

/** The `item` children of the set element `setName` under `el`. */
export function items(el: Element | null | undefined, setName: string): Element[] {
  const set = child(el, setName);
  return set ? Array.from(set.children).filter((c) => c.localName === "item") : [];
}

function parseTags(el: Element): Tag[] {
  return items(el, "tagSet").map((t) => ({ key: childText(t, "key"), value: childText(t, "value") }));
}

export function parseSnapshot(el: Element): Snapshot {
  return {
    snapshotId: childText(el, "snapshotId"),
    volumeId: childText(el, "volumeId"),
    status: childText(el, "status"),
    statusMessage: childText(el, "statusMessage"),
    startTime: childText(el, "startTime"),
    progress: childText(el, "progress"),
    ownerId: childText(el, "ownerId"),
    ownerAlias: childText(el, "ownerAlias"),
    volumeSize: Number(childText(el, "volumeSize") || 0),
    description: childText(el, "description"),
    encrypted: childText(el, "encrypted") === "true",
    tags: parseTags(el),
    consistency: childText(el, "consistency"),
    changedBlocks: childText(el, "changedBlocks"),
  };
}

export function parseVolume(el: Element): Volume {
  return {
    volumeId: childText(el, "volumeId"),
    size: Number(childText(el, "size") || 0),
    snapshotId: childText(el, "snapshotId"),
    status: childText(el, "status"),
    createTime: childText(el, "createTime"),
    attachments: items(el, "attachmentSet").map((a) => ({
      instanceId: childText(a, "instanceId"),
      device: childText(a, "device"),
      status: childText(a, "status"),
    })),
    tags: parseTags(el),
  };
}

export function parseInstance(el: Element): Instance {
  return {
    instanceId: childText(el, "instanceId"),
    state: childText(child(el, "instanceState"), "name"),
    rootDeviceName: childText(el, "rootDeviceName"),
    devices: items(el, "blockDeviceMapping").map((d) => ({
      deviceName: childText(d, "deviceName"),
      volumeId: childText(child(d, "ebs"), "volumeId"),
    })),
    tags: parseTags(el),
  };
}

/** `TagSpecification.1` parameters for snapshots: every tag exactly as given (an empty value
 *  is a tag, as in EC2; keys are not trimmed). The forms check the tags before calling this. */
export function tagSpecification(tags: Tag[]): Params {
  const out: Params = {};
  if (tags.length === 0) return out;
  out["TagSpecification.1.ResourceType"] = "snapshot";
  tags.forEach((t, i) => {
    out[`TagSpecification.1.Tag.${i + 1}.Key`] = t.key;
    out[`TagSpecification.1.Tag.${i + 1}.Value`] = t.value;
  });
  return out;
}

/** `Tag.N.Key` and `Tag.N.Value` parameters (CreateTags, DeleteTags), every tag as given; with
 *  `keysOnly`, keys alone (DeleteTags then deletes the key whatever its value). */
export function tagParams(tags: Tag[], keysOnly = false): Params {
  const out: Params = {};
  tags.forEach((t, i) => {
    out[`Tag.${i + 1}.Key`] = t.key;
    if (!keysOnly) out[`Tag.${i + 1}.Value`] = t.value;
  });
  return out;
}

export interface SnapshotFilter {
  /** An account id (Owner.1); empty for the caller's own snapshots. */
  owner: string;
  tagKey: string;
  tagValue: string;
  volumeId: string;
  state: string;
}

export interface SnapshotPage {
  snapshots: Snapshot[];
  nextToken: string;
}

export async function describeSnapshots(
  creds: Credentials,
  filter: SnapshotFilter,
  maxResults: number,
  nextToken: string | undefined,
): Promise<SnapshotPage> {
  const params: Params = { MaxResults: String(maxResults), NextToken: nextToken, "Owner.1": filter.owner || undefined };
  let n = 0;
  const add = (name: string, value: string) => {
    n += 1;
    params[`Filter.${n}.Name`] = name;
    params[`Filter.${n}.Value.1`] = value;
  };
  const key = filter.tagKey.trim();
  if (key && filter.tagValue !== "") add(`tag:${key}`, filter.tagValue);
  else if (key) add("tag-key", key);
  if (filter.volumeId) add("volume-id", filter.volumeId);
  if (filter.state) add("status", filter.state);
  const root = await ec2(creds, "DescribeSnapshots", params);
  return {
    snapshots: items(root, "snapshotSet").map(parseSnapshot),
    nextToken: childText(root, "nextToken"),
  };
}

export async function describeVolumes(creds: Credentials, volumeIds: string[] = []): Promise<Volume[]> {
  const params: Params = {};
  volumeIds.forEach((id, i) => (params[`VolumeId.${i + 1}`] = id));
  return items(await ec2(creds, "DescribeVolumes", params), "volumeSet").map(parseVolume);
}

/** DescribeInstances: the caller's own instances, or those named in `instanceIds` (an
 *  administrator may name any account's). */
export async function describeInstances(creds: Credentials, instanceIds: string[] = []): Promise<Instance[]> {
  const params: Params = {};
  instanceIds.forEach((id, i) => (params[`InstanceId.${i + 1}`] = id));
  const root = await ec2(creds, "DescribeInstances", params);
  const out: Instance[] = [];
  for (const r of items(root, "reservationSet")) for (const i of items(r, "instancesSet")) out.push(parseInstance(i));
  return out;
}

export function tagValue(tags: Tag[], key: string): string {
  return tags.find((t) => t.key === key)?.value ?? "";
}
