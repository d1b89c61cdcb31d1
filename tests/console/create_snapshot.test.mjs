// The teams' guide, literally, and the Create Snapshot dialog's validation (issue 15, items 1
// and 2): a real snapvold serving console/dist, driven through headless Chromium; what was
// created is read back with DescribeSnapshots signed outside the browser.
// Run: node --test tests/console/create_snapshot.test.mjs   (environment: see harness.mjs)

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  closeConsolePage,
  countEc2Requests,
  defaultTimeFromNow,
  describeSnapshotsOutsideBrowser,
  gainsFocus,
  goTo,
  launchBrowser,
  openConsolePage,
  screenshot,
  Service,
  signedInConsolePage,
  signInConsole,
  stopService,
} from "./harness.mjs";

let svc;
let browser;

/** Signs in as `alias`, opens Volumes from the navigation and Create Snapshot on `volume`. */
async function openCreateSnapshot(alias, volume) {
  const page = await signedInConsolePage(browser, svc, alias);
  await goTo(page, "Volumes");
  const volumeId = svc.volumes[volume];
  await page.locator(`tr[data-volume-id="${volumeId}"]`).getByRole("button", { name: "Create Snapshot" }).click();
  const dialog = page.getByRole("dialog", { name: `Create Snapshot of ${volumeId}` });
  await dialog.waitFor();
  return { page, dialog, volumeId };
}

/** The snapshot id in the notice the Volumes page shows once CreateSnapshot was accepted. */
async function createdSnapshotId(page) {
  const link = page.locator(".notice a");
  await link.waitFor();
  const id = (await link.textContent()).trim();
  assert.match(id, /^snap-[0-9a-f]{17}$/);
  return id;
}

async function snapshotsOf(page, alias, volumeId) {
  return describeSnapshotsOutsideBrowser(page, svc.endpoint, svc.accounts[alias], {
    "Filter.1.Name": "volume-id",
    "Filter.1.Value.1": volumeId,
  });
}

/** Submits, then checks the refusal is visible and nothing went to the server. */
async function submitRefused(dialog, sent) {
  const before = sent.count;
  await dialog.getByRole("button", { name: "Create Snapshot" }).click();
  await dialog.getByTestId("not-sent").waitFor();
  assert.match(await dialog.getByTestId("not-sent").textContent(), /^Not sent: /);
  assert.equal(sent.count, before, "no CreateSnapshot request while a field is invalid");
  assert.equal(await dialog.isVisible(), true, "the dialog stays open with what was typed");
}

/** The error shown under the field labelled `label`, and that the field is marked invalid. */
async function fieldError(dialog, label) {
  const input = dialog.getByLabel(label, { exact: true });
  assert.equal(await input.getAttribute("aria-invalid"), "true", `${label} is marked invalid`);
  const id = await input.getAttribute("id");
  return (await dialog.locator(`[id="${id}-error"]`).textContent()).trim();
}

/** Clicks the dialog's button `button` and, as soon as the click's render is committed (before
 *  any timer or frame), focuses the field labelled `label`, as a quick person would; answers
 *  whether the focus is still there a frame and a timer later (nothing moved it behind them). */
async function focusKeptAfterClick(dialog, button, label) {
  return dialog.evaluate(
    async (d, [button, label]) => {
      [...d.querySelectorAll("button")].find((el) => el.textContent.trim() === button).click();
      for (let i = 0; i < 3; i++) await Promise.resolve();
      const field = document.getElementById([...d.querySelectorAll("label")].find((el) => el.textContent.trim() === label).htmlFor);
      field.focus();
      await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 50)));
      return document.activeElement === field;
    },
    [button, label],
  );
}

async function assertValid(dialog, label) {
  const input = dialog.getByLabel(label, { exact: true });
  assert.equal(await input.getAttribute("aria-invalid"), null, `${label} is not marked invalid`);
}

describe("Create Snapshot: the guide's flow and visible validation", () => {
  before(async () => {
    // The default lifecycle policy runs 12 hours away, so only these tests make snapshots.
    svc = await new Service(["--default-time", defaultTimeFromNow()]).start();
    svc.addAccount("blue");
    for (const [name, seed] of [["db1", 11], ["db2", 12], ["db3", 13], ["db4", 14], ["db5", 15]])
      svc.addVolume("blue", name, { seed });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await stopService(svc);
  });

  test("the guide's steps, literally, as a member: exactly Name and Owner", async () => {
    const page = await openConsolePage(browser, svc.endpoint);
    await signInConsole(page, svc.accounts.blue);
    // "Volumes (under Elastic Block Store)".
    const nav = page.getByRole("navigation", { name: "Pages" });
    await nav.getByRole("heading", { name: "Elastic Block Store" }).waitFor();
    await nav.getByRole("list", { name: "Elastic Block Store" }).getByRole("link", { name: "Volumes" }).click();
    await page.getByRole("heading", { level: 1, name: "Volumes" }).waitFor();
    // "Create Snapshot".
    const volumeId = svc.volumes.db1;
    await page.locator(`tr[data-volume-id="${volumeId}"]`).getByRole("button", { name: "Create Snapshot" }).click();
    const dialog = page.getByRole("dialog", { name: `Create Snapshot of ${volumeId}` });
    await dialog.waitFor();
    assert.equal(await dialog.locator(".tag-row").count(), 0, "no tag rows before Add Tag");
    // "Add Tag: Key Name = a name" — typed where the focus is, as a person would.
    await dialog.getByRole("button", { name: "Add Tag" }).click();
    assert.equal(await dialog.locator(".tag-row").count(), 1, "Add Tag adds one row");
    assert.equal(await gainsFocus(dialog.getByLabel("Tag 1 key")), true, "focus is on the new row's key");
    assert.equal(await dialog.getByLabel("Tag 1 value").inputValue(), "", "the new row is empty");
    await page.keyboard.type("Name");
    await dialog.getByLabel("Tag 1 value").fill("db1-before-upgrade");
    // "Add Tag: Key Owner = the account name".
    await dialog.getByRole("button", { name: "Add Tag" }).click();
    assert.equal(await gainsFocus(dialog.getByLabel("Tag 2 key")), true);
    await page.keyboard.type("Owner");
    await dialog.getByLabel("Tag 2 value").fill("blue");
    assert.equal(await dialog.locator(".tag-row").count(), 2);
    assert.equal(await dialog.locator('[aria-invalid="true"]').count(), 0, "nothing flagged");
    await screenshot(page, "guide-create-snapshot");
    // "Create Snapshot".
    await dialog.getByRole("button", { name: "Create Snapshot" }).click();
    const id = await createdSnapshotId(page);
    await dialog.waitFor({ state: "detached" });

    const [snap] = await describeSnapshotsOutsideBrowser(page, svc.endpoint, svc.accounts.blue, { "SnapshotId.1": id });
    assert.deepEqual(snap.tags, [
      { key: "Name", value: "db1-before-upgrade" },
      { key: "Owner", value: "blue" },
    ]);
    await closeConsolePage(page);
  });

  test("Owner = the account's alias is a one-click suggestion that fills or adds a row", async () => {
    const { page, dialog } = await openCreateSnapshot("blue", "db2");
    const owner = dialog.getByRole("button", { name: "Use tag Owner = blue" });
    const name = dialog.getByRole("button", { name: "Use tag Name = db2" });
    await owner.waitFor();
    await name.waitFor();
    // With no rows, it adds one, filled, and focuses its value.
    await owner.click();
    assert.equal(await dialog.locator(".tag-row").count(), 1);
    assert.equal(await dialog.getByLabel("Tag 1 key").inputValue(), "Owner");
    assert.equal(await dialog.getByLabel("Tag 1 value").inputValue(), "blue");
    assert.equal(await gainsFocus(dialog.getByLabel("Tag 1 value")), true);
    assert.equal(await owner.count(), 0, "offered only while no row holds it");
    // A row keyed Owner by hand with another value: the suggestion fills that row, adds none.
    await dialog.getByLabel("Tag 1 value").fill("someone");
    await owner.waitFor();
    await owner.click();
    assert.equal(await dialog.locator(".tag-row").count(), 1);
    assert.equal(await dialog.getByLabel("Tag 1 value").inputValue(), "blue");
    // An empty row from Add Tag is filled by a suggestion rather than left empty beside it.
    await dialog.getByRole("button", { name: "Add Tag" }).click();
    await name.click();
    assert.equal(await dialog.locator(".tag-row").count(), 2);
    assert.equal(await dialog.getByLabel("Tag 2 key").inputValue(), "Name");
    assert.equal(await dialog.getByLabel("Tag 2 value").inputValue(), "db2");
    await closeConsolePage(page);
  });

  test("a repeated key is flagged on its row and blocks submit; Remove moves focus sensibly", async () => {
    const { page, dialog, volumeId } = await openCreateSnapshot("blue", "db3");
    const sent = countEc2Requests(page, "CreateSnapshot");
    for (const [key, value] of [["Owner", "blue"], ["Name", "db3"], ["Owner", "team-x"]]) {
      await dialog.getByRole("button", { name: "Add Tag" }).click();
      const n = await dialog.locator(".tag-row").count();
      await dialog.getByLabel(`Tag ${n} key`).fill(key);
      await dialog.getByLabel(`Tag ${n} value`).fill(value);
    }
    // Before any submit: the third row says which row has the key; the first is not blamed.
    assert.match(await fieldError(dialog, "Tag 3 key"), /Tag 1 already has the key “Owner”/);
    await assertValid(dialog, "Tag 1 key");
    await assertValid(dialog, "Tag 2 key");
    await screenshot(page, "create-snapshot-repeated-key");
    await submitRefused(dialog, sent);
    assert.equal(await gainsFocus(dialog.getByLabel("Tag 3 key")), true, "focus goes to the flagged field");

    // Remove the middle row: focus moves to the row that took its place.
    await dialog.getByRole("button", { name: "Remove tag 2" }).click();
    assert.equal(await dialog.getByLabel("Tag 2 key").inputValue(), "Owner");
    assert.equal(await gainsFocus(dialog.getByLabel("Tag 2 key")), true);
    // Remove the last row: focus moves to the one before it; the flag is gone with it.
    await dialog.getByRole("button", { name: "Remove tag 2" }).click();
    assert.equal(await gainsFocus(dialog.getByLabel("Tag 1 key")), true);
    assert.equal(await dialog.locator('[aria-invalid="true"]').count(), 0);
    // Remove the only row: focus moves to Add Tag.
    await dialog.getByRole("button", { name: "Remove tag 1" }).click();
    assert.equal(await gainsFocus(dialog.getByRole("button", { name: "Add Tag" })), true);
    // Focus moved by the person right after Add Tag, or right after a refused submit, stays
    // where they put it: the dialog's own moves happen with the render, not a frame later
    // (when they would steal the field the person is typing into).
    assert.equal(await focusKeptAfterClick(dialog, "Add Tag", "Tag 1 value"), true, "the value field keeps focus after Add Tag");
    assert.equal(await focusKeptAfterClick(dialog, "Create Snapshot", "Description"), true, "Description keeps focus after a refused submit");
    assert.match(await fieldError(dialog, "Tag 1 key"), /Enter a key/);
    await dialog.getByRole("button", { name: "Remove tag 1" }).click();
    assert.equal(sent.count, 0);
    assert.deepEqual(await snapshotsOf(page, "blue", volumeId), [], "nothing created");
    await closeConsolePage(page);
  });

  test("each limit's boundary is accepted whole: 128-char key, 256-char value, 255-char description, 50 tags, an empty value", async () => {
    const { page, dialog, volumeId } = await openCreateSnapshot("blue", "db4");
    // 255 characters as the server counts them (code points): 5 of them outside the BMP.
    const description = "😀".repeat(5) + "d".repeat(250);
    const key128 = "k".repeat(127) + "é";
    const value256 = "v".repeat(255) + "é";
    await dialog.getByLabel("Description").fill(description);
    const tags = [{ key: key128, value: value256 }, { key: "Empty", value: "" }];
    for (let i = 3; i <= 50; i++) tags.push({ key: `k${i}`, value: `v${i}` });
    for (const [i, t] of tags.entries()) {
      await dialog.getByRole("button", { name: "Add Tag" }).click();
      await dialog.getByLabel(`Tag ${i + 1} key`).fill(t.key);
      if (t.value) await dialog.getByLabel(`Tag ${i + 1} value`).fill(t.value);
    }
    // Each counter shows its limit reached, nothing is flagged.
    const counterOf = async (label) => {
      const id = await dialog.getByLabel(label, { exact: true }).getAttribute("id");
      return (await dialog.locator(`[id="${id}-count"]`).textContent()).replace(/\s*characters$/, "");
    };
    assert.equal(await counterOf("Description"), "255/255");
    assert.equal(await counterOf("Tag 1 key"), "128/128");
    assert.equal(await counterOf("Tag 1 value"), "256/256");
    await dialog.getByText("50 of 50 tags").waitFor();
    assert.equal(await dialog.locator('[aria-invalid="true"]').count(), 0, "nothing flagged at the limits");
    await dialog.getByRole("button", { name: "Create Snapshot" }).click();
    const id = await createdSnapshotId(page);

    const [snap] = await snapshotsOf(page, "blue", volumeId);
    assert.equal(snap.snapshotId, id);
    assert.equal(snap.description, description, "the description is stored whole");
    const byKey = new Map(snap.tags.map((t) => [t.key, t.value]));
    assert.equal(byKey.size, 50);
    assert.equal(byKey.get(key128), value256, "the 128-character key and 256-character value are stored whole");
    assert.equal(byKey.get("Empty"), "", "a tag with an empty value is kept");
    await closeConsolePage(page);
  });

  test("one past each limit is refused visibly: shown as typed, not sent, nothing created", async () => {
    const { page, dialog, volumeId } = await openCreateSnapshot("blue", "db5");
    const sent = countEc2Requests(page, "CreateSnapshot");

    // Description: 300 characters typed key by key are all kept (no maxlength), and refused.
    const description = dialog.getByLabel("Description");
    await description.focus();
    await page.keyboard.type("x".repeat(300));
    assert.equal((await description.inputValue()).length, 300, "nothing typed is cut");
    assert.match(await fieldError(dialog, "Description"), /300 characters; the limit is 255/);
    await submitRefused(dialog, sent);
    await description.fill("d".repeat(256));
    assert.match(await fieldError(dialog, "Description"), /256 characters; the limit is 255/);
    await screenshot(page, "create-snapshot-description-too-long");
    await submitRefused(dialog, sent);
    await description.fill("d".repeat(255));
    await assertValid(dialog, "Description");

    // Key: 129 characters typed are all kept and refused; then valid at 128.
    await dialog.getByRole("button", { name: "Add Tag" }).click();
    // Add Tag moves focus to the new key; under load that lands a frame later, and keys typed
    // before it are lost. Wait for the focus (this also checks it moves there).
    const newKey = await dialog.getByLabel("Tag 1 key").elementHandle();
    await page.waitForFunction((el) => document.activeElement === el, newKey, { timeout: 5000 });
    await page.keyboard.type("k".repeat(129));
    assert.equal((await dialog.getByLabel("Tag 1 key").inputValue()).length, 129);
    assert.match(await fieldError(dialog, "Tag 1 key"), /129 characters; the limit is 128/);
    await submitRefused(dialog, sent);
    await dialog.getByLabel("Tag 1 key").fill("k".repeat(128));
    await assertValid(dialog, "Tag 1 key");

    // Value: 257 refused.
    await dialog.getByLabel("Tag 1 value").fill("v".repeat(257));
    assert.match(await fieldError(dialog, "Tag 1 value"), /257 characters; the limit is 256/);
    await submitRefused(dialog, sent);
    await dialog.getByLabel("Tag 1 value").fill("v".repeat(256));
    await assertValid(dialog, "Tag 1 value");

    // The reserved prefix, EC2's, in any case (snapvol's own tags live under it).
    for (const key of ["aws:x", "AwS:x", "aws:dlm:lifecycle-policy-id"]) {
      await dialog.getByLabel("Tag 1 key").fill(key);
      assert.match(await fieldError(dialog, "Tag 1 key"), /reserved for the system's own tags/);
      await submitRefused(dialog, sent);
    }
    // snapvol: is an ordinary prefix now (the old home of snapvol's tags).
    await dialog.getByLabel("Tag 1 key").fill("snapvol:policy-id");
    await assertValid(dialog, "Tag 1 key");
    await dialog.getByLabel("Tag 1 key").fill("Name");

    // An empty key: flagged (a submit was tried already) and refused.
    await dialog.getByRole("button", { name: "Add Tag" }).click();
    await dialog.getByLabel("Tag 2 value").fill("no key");
    assert.match(await fieldError(dialog, "Tag 2 key"), /Enter a key/);
    await submitRefused(dialog, sent);
    await dialog.getByRole("button", { name: "Remove tag 2" }).click();

    // 51 tags: the list says so and the form refuses; removing one makes it acceptable.
    for (let i = 2; i <= 51; i++) {
      await dialog.getByRole("button", { name: "Add Tag" }).click();
      await dialog.getByLabel(`Tag ${i} key`).fill(`k${i}`);
    }
    await dialog.getByText("51 tags: the limit is 50 per resource. Remove 1.").waitFor();
    await dialog.getByText("51 of 50 tags").waitFor();
    await screenshot(page, "create-snapshot-51-tags");
    await submitRefused(dialog, sent);
    await dialog.getByRole("button", { name: "Remove tag 51" }).click();
    await dialog.getByText("50 of 50 tags").waitFor();
    assert.equal(await dialog.getByText(/tags: the limit is 50/).count(), 0);

    assert.equal(sent.count, 0, "no CreateSnapshot was sent while anything was invalid");
    assert.deepEqual(await snapshotsOf(page, "blue", volumeId), [], "nothing created");
    await closeConsolePage(page);
  });

  test("Escape and Cancel while the create is in flight do not pretend to cancel it", async () => {
    const { page, dialog, volumeId } = await openCreateSnapshot("blue", "db2");
    // Hold the CreateSnapshot request in the browser until the dialog has been asked to close.
    let release;
    const gate = new Promise((r) => (release = r));
    await page.route("**/*", async (route) => {
      const r = route.request();
      if (r.method() === "POST" && /(^|&)Action=CreateSnapshot(&|$)/.test(r.postData() ?? "")) await gate;
      await route.continue();
    });
    const before = (await snapshotsOf(page, "blue", volumeId)).length;
    await dialog.getByRole("button", { name: "Use tag Owner = blue" }).click();
    await dialog.getByRole("button", { name: "Create Snapshot" }).click();
    await dialog.getByRole("button", { name: "Creating…" }).waitFor();
    await page.keyboard.press("Escape");
    await dialog.getByTestId("busy-note").filter({ hasText: /still being created/ }).waitFor();
    assert.equal(await dialog.isVisible(), true, "Escape did not close the dialog");
    await dialog.getByRole("button", { name: "Cancel" }).click();
    assert.equal(await dialog.isVisible(), true, "Cancel did not close the dialog");
    assert.match(await dialog.getByTestId("busy-note").textContent(), /cannot be cancelled/);
    await screenshot(page, "create-snapshot-in-flight");
    release();
    // The answer comes: the dialog closes and says what was created.
    const id = await createdSnapshotId(page);
    await dialog.waitFor({ state: "detached" });
    const after = await snapshotsOf(page, "blue", volumeId);
    assert.equal(after.length, before + 1);
    assert.ok(after.some((s) => s.snapshotId === id));
    await closeConsolePage(page);
  });

  test("the tags dialog uses the same editor: repeated key refused, an empty value saved", async () => {
    const page = await openConsolePage(browser, svc.endpoint);
    await signInConsole(page, svc.accounts.blue);
    const [snap] = await snapshotsOf(page, "blue", svc.volumes.db1); // the guide's snapshot
    await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Snapshots" }).click();
    // The row's actions are in its menu.
    await page.locator(`tr[data-snapshot-id="${snap.snapshotId}"]`).getByRole("button", { name: `Actions for ${snap.snapshotId}` }).click();
    await page.getByRole("menuitem", { name: `Edit tags of ${snap.snapshotId}` }).click();
    const dialog = page.getByRole("dialog", { name: `Tags of ${snap.snapshotId}` });
    await dialog.getByLabel("Tag 2 key").waitFor();
    const sent = countEc2Requests(page, "CreateTags");
    await dialog.getByRole("button", { name: "Add Tag" }).click();
    assert.equal(await gainsFocus(dialog.getByLabel("Tag 3 key")), true);
    await page.keyboard.type("Owner");
    assert.match(await fieldError(dialog, "Tag 3 key"), /already has the key “Owner”/);
    await dialog.getByRole("button", { name: "Save tags" }).click();
    await dialog.getByTestId("not-sent").waitFor();
    assert.equal(sent.count, 0);
    await dialog.getByLabel("Tag 3 key").fill("Reviewed");
    await dialog.getByRole("button", { name: "Save tags" }).click();
    await page.getByText(`Saved the tags of ${snap.snapshotId}.`).waitFor();
    const [now] = await describeSnapshotsOutsideBrowser(page, svc.endpoint, svc.accounts.blue, { "SnapshotId.1": snap.snapshotId });
    assert.deepEqual(now.tags, [
      { key: "Name", value: "db1-before-upgrade" },
      { key: "Owner", value: "blue" },
      { key: "Reviewed", value: "" },
    ]);
    await closeConsolePage(page);
  });
});
