// The console's undo pages against a real snapvold (part of ctest console_e2e): rollback tasks
// (a registered volume rolled back in place from its page, a root volume replaced from the
// Instances page, both followed to `succeeded` with the bytes written), the Recycle Bin (a
// snapshot deleted under a rule is listed, recovered one by one and in bulk, and is back in
// Snapshots), retention rules (created at the description's limit, a locked rule's edit refused
// by the API, a member without rbin rights refused) and in-place restore requests.

import assert from "node:assert/strict";
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import {
  cliSnapshot,
  closeConsolePage,
  defaultTimeFromNow,
  ec2OutsideBrowser,
  goTo,
  launchBrowser,
  screenshot,
  Service,
  signedInConsolePage,
  signedJsonOutsideBrowser,
  stopService,
} from "./harness.mjs";

const LAPTOP = { width: 1366, height: 860 };
const MiB = 1 << 20;

let svc;
let browser;

const signInAs = (alias, hash = "") => signedInConsolePage(browser, svc, alias, LAPTOP, { hash });
const row = (page, attr, id) => page.locator(`tr[${attr}="${id}"]`);
const volumePath = (name) => join(svc.root, "sources", `${name}.img`);

async function rowAction(rowLocator, label, name) {
  await rowLocator.getByRole("button", { name: label }).click();
  await rowLocator.page().getByRole("menu", { name: label }).getByRole("menuitem", { name }).click();
}

/** `bytes` bytes of 0xa5 written into volume `name` at `offset`. */
function scribble(name, offset, bytes) {
  const fd = openSync(volumePath(name), "r+");
  writeSync(fd, Buffer.alloc(bytes, 0xa5), 0, bytes, offset);
  closeSync(fd);
}

/** The offset of the first `count` 512 KiB blocks in a row of `image` that all hold data (a
 *  rollback writes those; holes in the snapshot are zeroed, not written). */
function dataBlocks(image, count) {
  const bs = 512 * 1024;
  const hasData = (b) => image.subarray(b * bs, (b + 1) * bs).some((x) => x !== 0);
  for (let b = 0; b + count <= image.length / bs; b++) {
    let all = true;
    for (let k = 0; k < count; k++) all = all && hasData(b + k);
    if (all) return b * bs;
  }
  throw new Error(`no ${count} blocks in a row hold data`);
}

/** The form bodies of the EC2 requests `page` sends for `action`, parsed. */
function recordEc2(page, action) {
  const sent = [];
  page.on("request", (r) => {
    const body = r.postData() ?? "";
    if (r.method() === "POST" && new RegExp(`(^|&)Action=${action}(&|$)`).test(body)) sent.push(new URLSearchParams(body));
  });
  return sent;
}

async function waitForTask(page, taskId, state) {
  await page.locator(`tr[data-task-id="${taskId}"][data-state="${state}"]`).waitFor();
  return row(page, "data-task-id", taskId);
}

describe("console: rollbacks, Recycle Bin, in-place restore requests", () => {
  before(async () => {
    svc = await new Service(["--default-time", defaultTimeFromNow()]).start();
    svc.addAccount("team-1");
    svc.addAccount("team-2");
    svc.addInstance("team-1", "app-1");
    svc.addVolume("team-1", "web1", { seed: 2 });
    svc.addVolume("team-1", "app-boot", { seed: 3, instance: "app-1", device: "/dev/xvda", boot: true });
    // team-1 may manage its own retention rules; team-2 has the member policy only (read rules).
    const doc = join(svc.root, "rbin-editor.json");
    writeFileSync(
      doc,
      JSON.stringify({
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Action: "rbin:*", Resource: "arn:aws:rbin:*:${aws:PrincipalAccount}:rule/*" }],
      }),
    );
    svc.cli("policy", "create", "--name", "rbin-editor", "--document", doc);
    svc.cli("policy", "attach", "--account-id", svc.accounts["team-1"].accountId, "--policy-name", "rbin-editor");
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await stopService(svc);
  });

  test("an administrator rolls a registered volume back from its page: succeeded, 1 MiB written, the volume equals the snapshot", async () => {
    const vol = svc.volumes.web1;
    const snap = cliSnapshot(svc, "web1");
    const original = readFileSync(volumePath("web1"));
    scribble("web1", dataBlocks(original, 2), MiB); // two 512 KiB blocks of data differ from the snapshot
    assert.notDeepEqual(readFileSync(volumePath("web1")), original);

    const page = await signInAs("admin", `#/volume/${vol}`);
    const sent = recordEc2(page, "RestoreVolumeFromSnapshot");
    await page.getByRole("button", { name: "Roll back volume in place" }).click();
    const dialog = page.getByRole("dialog", { name: `Roll back ${vol} in place` });
    const choice = dialog.getByLabel("Snapshot to roll back to");
    await choice.locator(`option[value="${snap}"]`).waitFor({ state: "attached" });
    assert.equal(await choice.inputValue(), snap);
    assert.equal(await dialog.getByLabel(/Take a safety snapshot/).isChecked(), true, "a safety snapshot is on by default");
    assert.equal(await dialog.getByLabel(/Force the rollback/).count(), 0, "no Force for a detached volume");
    await screenshot(page, "rollback-volume-dialog");
    await dialog.getByRole("button", { name: "Roll back" }).click();
    const taskId = (await dialog.getByTestId("rollback-task-id").textContent()).trim();
    assert.match(taskId, /^replacevol-[0-9a-f]{17}$/);
    const safety = (await dialog.getByTestId("safety-snapshot-id").textContent()).trim();
    assert.match(safety, /^snap-[0-9a-f]{17}$/);
    assert.equal(sent.length, 1);
    assert.deepEqual(Object.fromEntries(sent[0]), {
      Action: "RestoreVolumeFromSnapshot",
      Version: "2016-11-15",
      VolumeId: vol,
      SnapshotId: snap,
      SafetySnapshot: "true",
    });

    await dialog.getByRole("link", { name: "Rollback tasks" }).click();
    await page.getByRole("heading", { level: 1, name: "Rollback tasks" }).waitFor();
    const r = await waitForTask(page, taskId, "succeeded");
    assert.equal(await r.getByTestId("bytes-written").getAttribute("data-bytes"), String(MiB));
    assert.match(await r.getByTestId("bytes-written").textContent(), /^1 MiB written$/);
    assert.equal(await r.locator('td[data-label="Safety snapshot"]').textContent(), safety);
    assert.equal(await r.locator('td[data-label="Instance"]').textContent(), "not attached");
    await r.locator('td[data-label="Completed"] time').waitFor();
    assert.deepEqual(readFileSync(volumePath("web1")), original, "the volume is the snapshot's bytes again");
    await screenshot(page, "rollback-tasks-admin");
    await closeConsolePage(page);

    // Members see their own account's tasks only, and no rollback action.
    const member = await signInAs("team-1", `#/volume/${vol}`);
    await member.getByText("Snapshots of this volume").waitFor();
    assert.equal(await member.getByRole("button", { name: "Roll back volume in place" }).count(), 0);
    await goTo(member, "Rollback tasks");
    await waitForTask(member, taskId, "succeeded");
    await closeConsolePage(member);
    const other = await signInAs("team-2");
    await goTo(other, "Rollback tasks");
    await other.getByText("No rollback tasks.").waitFor();
    await closeConsolePage(other);
  });

  test("a volume of a running instance: the refusal is shown with its code; Force sends the whole 1,024-character reason", async () => {
    const vol = svc.volumes["app-boot"];
    const snap = cliSnapshot(svc, "app-boot");
    const page = await signInAs("admin", `#/volume/${vol}`);
    const sent = recordEc2(page, "RestoreVolumeFromSnapshot");
    await page.getByRole("button", { name: "Roll back volume in place" }).click();
    const dialog = page.getByRole("dialog", { name: `Roll back ${vol} in place` });
    await dialog.getByLabel("Snapshot to roll back to").locator(`option[value="${snap}"]`).waitFor({ state: "attached" });
    await dialog.getByRole("button", { name: "Roll back" }).click();
    const note = dialog.getByTestId("error-note");
    await note.waitFor();
    assert.match(await note.textContent(), /which is running.*\(IncorrectState\)$/s);
    assert.equal(sent[0].has("Force"), false);
    assert.equal(sent[0].has("Reason"), false);

    const reason = "ä".repeat(1000) + "x".repeat(24); // 1,024 characters, the server's limit
    await dialog.getByLabel(/Force the rollback/).check();
    const field = dialog.getByLabel("Reason (written to the audit log)");
    await field.fill(reason + "y");
    assert.equal(await field.getAttribute("aria-invalid"), "true", "one past the limit is marked");
    await dialog.getByRole("button", { name: "Roll back" }).click();
    assert.equal(sent.length, 1, "a reason past the limit is not sent");
    await field.fill(reason);
    assert.equal(await field.inputValue(), reason, "nothing is cut");
    await dialog.getByRole("button", { name: "Roll back" }).click();
    const taskId = (await dialog.getByTestId("rollback-task-id").textContent()).trim();
    assert.equal(sent.length, 2);
    assert.equal(sent[1].get("Force"), "true");
    assert.equal(sent[1].get("Reason"), reason);
    await dialog.getByRole("button", { name: "Close" }).click();

    await goTo(page, "Rollback tasks");
    const r = await waitForTask(page, taskId, "succeeded");
    assert.equal(await r.locator('td[data-label="Instance"]').textContent(), svc.instances["app-1"]);
    assert.ok((await r.locator('td[data-label="Reason"] .lv-trunc').getAttribute("title")).includes(`(${reason})`), "the whole reason");
    await r.locator(".badge", { hasText: "forced" }).waitFor();
    await closeConsolePage(page);
  });

  test("Replace root volume from the Instances page: refused while running, succeeds once the instance is stopped", async () => {
    const inst = svc.instances["app-1"];
    const vol = svc.volumes["app-boot"];
    const snap = cliSnapshot(svc, "app-boot");
    scribble("app-boot", dataBlocks(readFileSync(volumePath("app-boot")), 1), MiB / 2);
    const page = await signInAs("admin");
    const sent = recordEc2(page, "CreateReplaceRootVolumeTask");
    await goTo(page, "Instances");
    await page.getByRole("button", { name: `Replace root volume of ${inst}` }).click();
    const dialog = page.getByRole("dialog", { name: `Replace the root volume of ${inst}` });
    await dialog.getByLabel("Snapshot to roll back to").locator(`option[value="${snap}"]`).waitFor({ state: "attached" });
    assert.equal(await dialog.getByLabel("Snapshot to roll back to").inputValue(), snap, "the newest snapshot first");
    await dialog.getByRole("button", { name: "Replace root volume" }).click();
    const note = dialog.getByTestId("error-note");
    await note.waitFor();
    assert.match(await note.textContent(), /\(IncorrectInstanceState\)$/);
    assert.deepEqual(Object.fromEntries(sent[0]), { Action: "CreateReplaceRootVolumeTask", Version: "2016-11-15", InstanceId: inst, SnapshotId: snap });

    svc.cli("instance", "stop", inst);
    await dialog.getByRole("button", { name: "Replace root volume" }).click();
    const taskId = (await dialog.getByTestId("rollback-task-id").textContent()).trim();
    await dialog.getByRole("button", { name: "Close" }).click();
    await goTo(page, "Rollback tasks");
    const r = await waitForTask(page, taskId, "succeeded");
    assert.equal(await r.getByTestId("bytes-written").getAttribute("data-bytes"), String(MiB / 2));
    assert.equal(await r.getAttribute("data-volume-id"), vol);
    svc.cli("instance", "start", inst);
    await closeConsolePage(page);
  });

  test("retention rules: a 255-character description is sent whole, 256 is not sent; a member without rbin rights sees AccessDenied", async () => {
    const page = await signInAs("team-1");
    const sent = [];
    page.on("request", (r) => r.method() === "POST" && new URL(r.url()).pathname === "/rules" && sent.push(JSON.parse(r.postData())));
    await goTo(page, "Recycle Bin");
    await page.getByText("The Recycle Bin is empty.").waitFor();
    await page.getByText(/This account has no retention rules/).waitFor();
    await page.getByRole("button", { name: "Create retention rule" }).click();
    const dialog = page.getByRole("dialog", { name: "Create retention rule" });
    const description = "Keep team-1's deleted snapshots — ünïcode counts as one ".padEnd(255, "z");
    const field = dialog.getByLabel("Description (optional)");
    await field.fill(description + "z");
    await dialog.getByRole("button", { name: "Create rule" }).click();
    await dialog.getByTestId("not-sent").waitFor();
    assert.equal(sent.length, 0);
    await field.fill(description);
    assert.equal(await dialog.getByTestId("counter").first().textContent(), "255/255 characters");
    await dialog.getByRole("button", { name: "Create rule" }).click();
    await dialog.waitFor({ state: "detached" });
    assert.deepEqual(sent, [{ ResourceType: "EBS_SNAPSHOT", RetentionPeriod: { RetentionPeriodValue: 7, RetentionPeriodUnit: "DAYS" }, Description: description }]);
    const ruleRow = page.locator("tr[data-rule-id]");
    await ruleRow.waitFor();
    const ruleId = await ruleRow.getAttribute("data-rule-id");
    const got = await signedJsonOutsideBrowser(svc.endpoint, svc.accounts["team-1"], `/rules/${ruleId}`, "GET", undefined, "rbin");
    assert.equal(got.status, 200);
    assert.equal(got.body.Description, description);
    assert.equal(await ruleRow.getByTestId("retention").textContent(), "7 days");
    await screenshot(page, "recycle-bin-rules");
    await closeConsolePage(page);

    const other = await signInAs("team-2");
    await goTo(other, "Recycle Bin");
    await other.getByRole("button", { name: "Create retention rule" }).click();
    const refused = other.getByRole("dialog", { name: "Create retention rule" });
    await refused.getByRole("button", { name: "Create rule" }).click();
    const note = refused.getByTestId("error-note");
    await note.waitFor();
    assert.match(await note.textContent(), /\(AccessDeniedException\)$/);
    await closeConsolePage(other);
  });

  test("a snapshot deleted under the rule is in the bin, recovered from it (one, then two at once) and back in Snapshots", async () => {
    const creds = svc.accounts["team-1"];
    const one = cliSnapshot(svc, "web1");
    await ec2OutsideBrowser(svc.endpoint, creds, "DeleteSnapshot", { SnapshotId: one });
    const page = await signInAs("team-1");
    await goTo(page, "Recycle Bin");
    const r = row(page, "data-snapshot-id", one);
    await r.waitFor();
    assert.equal(await r.locator('td[data-label="Volume"]').textContent(), svc.volumes.web1);
    const exit = Date.parse(await r.locator('td[data-label="Retention ends"] time').getAttribute("datetime"));
    const entered = Date.parse(await r.locator('td[data-label="Deleted (entered the bin)"] time').getAttribute("datetime"));
    assert.equal(exit - entered, 7 * 24 * 3600 * 1000, "retention: the rule's 7 days");
    await screenshot(page, "recycle-bin");
    await rowAction(r, `Actions for ${one}`, `Recover ${one}`);
    await page.getByTestId("bin-outcome").getByText(`Recovered ${one}`).waitFor();
    await r.waitFor({ state: "detached" });
    await page.getByTestId("bin-outcome").getByRole("link", { name: "Snapshots" }).click();
    await row(page, "data-snapshot-id", one).waitFor();

    const two = [cliSnapshot(svc, "web1"), cliSnapshot(svc, "web1")];
    for (const id of two) await ec2OutsideBrowser(svc.endpoint, creds, "DeleteSnapshot", { SnapshotId: id });
    await goTo(page, "Recycle Bin");
    for (const id of two) await row(page, "data-snapshot-id", id).waitFor();
    await page.getByLabel("Select all shown").check();
    await page.getByRole("button", { name: "Recover selected (2)" }).click();
    await page.getByText("The Recycle Bin is empty.").waitFor();
    const outcome = await page.getByTestId("bin-outcome").textContent();
    for (const id of two) assert.ok(outcome.includes(id), `${id} recovered`);
    const xml = await ec2OutsideBrowser(svc.endpoint, creds, "DescribeSnapshots", { "SnapshotId.1": two[0], "SnapshotId.2": two[1] });
    for (const id of two) assert.ok(xml.includes(`<snapshotId>${id}</snapshotId>`), `${id} is listed by DescribeSnapshots again`);
    await closeConsolePage(page);
  });

  test("a locked rule shows its lock and unlock delay; its edit shows the API's refusal and changes nothing", async () => {
    const page = await signInAs("team-1");
    await goTo(page, "Recycle Bin");
    await page.locator("tr[data-rule-id]").first().waitFor();
    await page.getByRole("button", { name: "Create retention rule" }).click();
    const create = page.getByRole("dialog", { name: "Create retention rule" });
    await create.getByLabel("Retention period (days)").fill("3");
    await create.getByLabel(/Lock the rule/).check();
    await create.getByLabel("Unlock delay (days)").fill("10");
    await create.getByRole("button", { name: "Create rule" }).click();
    await create.waitFor({ state: "detached" });
    const locked = page.locator('tr[data-lock-state="locked"]');
    await locked.waitFor();
    const id = await locked.getAttribute("data-rule-id");
    assert.match(await locked.getByTestId("lock-state").textContent(), /locked.*unlock delay 10 days/);

    await rowAction(locked, `Actions for rule ${id}`, `Edit rule ${id}`);
    const edit = page.getByRole("dialog", { name: `Edit rule ${id}` });
    await edit.getByTestId("rule-locked-note").waitFor();
    await edit.getByLabel("Retention period (days)").fill("1");
    await edit.getByRole("button", { name: "Save changes" }).click();
    const note = edit.getByTestId("error-note");
    await note.waitFor();
    assert.match(await note.textContent(), /is locked: a locked rule cannot be modified.*\(ConflictException\)$/s);
    await screenshot(page, "locked-rule-refused");
    await edit.getByRole("button", { name: "Cancel" }).click();
    const got = await signedJsonOutsideBrowser(svc.endpoint, svc.accounts["team-1"], `/rules/${id}`, "GET", undefined, "rbin");
    assert.equal(got.body.RetentionPeriod.RetentionPeriodValue, 3);

    // Unlock starts the unlock delay: pending_unlock, with the time it ends; deleting is still refused.
    await rowAction(locked, `Actions for rule ${id}`, `Unlock rule ${id}`);
    const unlock = page.getByRole("dialog", { name: `Unlock rule ${id}` });
    await unlock.getByRole("button", { name: "Unlock" }).click();
    const pending = page.locator(`tr[data-rule-id="${id}"][data-lock-state="pending_unlock"]`);
    await pending.waitFor();
    const lockText = await pending.getByTestId("lock-state").textContent();
    assert.match(lockText, /unlock delay 10 days.*unlocked at/s);
    const ends = Date.parse(await pending.locator('[data-testid="lock-state"] time').getAttribute("datetime"));
    assert.ok(Math.abs(ends - (Date.now() + 10 * 24 * 3600 * 1000)) < 5 * 60 * 1000, "the unlock delay ends in 10 days");
    await rowAction(pending, `Actions for rule ${id}`, `Delete rule ${id}`);
    const del = page.getByRole("dialog", { name: `Delete rule ${id}` });
    await del.getByRole("button", { name: "Delete rule" }).click();
    assert.match(await del.getByTestId("error-note").textContent(), /cannot be deleted.*\(ConflictException\)$/s);
    await closeConsolePage(page);
  });

  test("an in-place restore request: filed with its volume, approved, and followed to the task's end with its safety snapshot", async () => {
    const snap = cliSnapshot(svc, "web1");
    scribble("web1", 2 * MiB, 1000);
    const page = await signInAs("team-1");
    const bodies = [];
    page.on("request", (r) => r.method() === "POST" && new URL(r.url()).pathname === "/api/v1/restore-requests" && bodies.push(JSON.parse(r.postData())));
    await goTo(page, "Snapshots");
    const r = row(page, "data-snapshot-id", snap);
    await rowAction(r, `Actions for ${snap}`, `Restore ${snap}`);
    const dialog = page.getByRole("dialog", { name: `Restore ${snap}` });
    await dialog.getByLabel("Reason for the restore").fill("bad deploy this morning");
    await dialog.getByLabel(/In place: roll a volume back/).check();
    assert.equal(await dialog.getByLabel("Volume to roll back").inputValue(), svc.volumes.web1, "the snapshot's own volume first");
    await dialog.getByRole("button", { name: "Request restore" }).click();
    const rrId = (await dialog.getByTestId("restore-request-id").textContent()).trim();
    assert.deepEqual(bodies, [{ snapshotId: snap, reason: "bad deploy this morning", restoreType: "in-place", volumeId: svc.volumes.web1 }]);
    await dialog.getByRole("button", { name: "Close" }).click();
    await closeConsolePage(page);

    const admin = await signInAs("admin");
    await goTo(admin, "Restore requests");
    const req = row(admin, "data-request-id", rrId);
    await req.waitFor();
    assert.equal(await req.getByTestId("restore-type").textContent(), `in place: ${svc.volumes.web1}`);
    await rowAction(req, `Actions for ${rrId}`, `Approve ${rrId}`);
    const approve = admin.getByRole("dialog", { name: `Approve ${rrId}` });
    assert.match(await approve.textContent(), new RegExp(`rolls volume ${svc.volumes.web1} back to it in place`));
    await approve.getByRole("button", { name: "Approve" }).click();
    const task = req.getByTestId("restore-task");
    await task.locator(".state-succeeded").waitFor();
    assert.match(await task.textContent(), /task replacevol-[0-9a-f]{17} succeeded100%/);
    assert.match(await task.getByTestId("restore-safety-snapshot").textContent(), /^snap-[0-9a-f]{17}$/);
    await screenshot(admin, "restore-request-in-place");
    await closeConsolePage(admin);

    const member = await signInAs("team-1");
    await goTo(member, "Restore requests");
    await row(member, "data-request-id", rrId).getByTestId("restore-task").locator(".state-succeeded").waitFor();
    await closeConsolePage(member);
  });
});
