// End-to-end tests of the web console: a real snapvold (its own data dir, port 0) serving
// console/dist at /console/, driven through headless Chromium with playwright-core.
// Run: node --test tests/console/   (see harness.mjs for the environment it reads)

import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import {
  ARTIFACTS,
  closeConsolePage,
  defaultTimeFromNow,
  ec2OutsideBrowser,
  goTo,
  launchBrowser,
  openConsolePage,
  scheduleClockArgs,
  screenshot,
  Service,
  signedInConsolePage,
  signedJsonOutsideBrowser,
  stopService,
  utcHhMm,
} from "./harness.mjs";

const UNAUTHORIZED = "You are not authorized to perform this operation.";
const LAPTOP = { width: 1366, height: 860 };
const PHONE = { width: 390, height: 844 };

let svc;
let browser;
// What earlier tests made and later ones use.
const made = { web1Snapshot: null, appSnapshot: null, restoreRequest: null, policy: null, policyTime: null };
// How long the lifecycle test may wait for its policy's run: it is due ~20 s after set-up
// began, and the tests before it take about half a minute.
const POLICY_RUN_WAIT_MS = 120_000;

/** A fresh browser context (its own sessionStorage) with uncaught page errors collected. */
async function openPage(viewport = LAPTOP) {
  return openConsolePage(browser, svc.endpoint, viewport);
}

const closePage = closeConsolePage;

async function signIn(page, acct, secret = acct.secretAccessKey) {
  await page.getByLabel("Access key ID").fill(acct.accessKeyId);
  await page.getByLabel("Secret access key").fill(secret);
  await page.getByRole("button", { name: "Sign in" }).click();
}

const signInAs = (alias, viewport = LAPTOP) => signedInConsolePage(browser, svc, alias, viewport);

const row = (page, attr, id) => page.locator(`tr[${attr}="${id}"]`);

/** A row's action: each row keeps its actions in a menu ("Actions for ID"); returns the menu button. */
async function rowAction(rowLocator, id, name) {
  const button = rowLocator.getByRole("button", { name: `Actions for ${id}` });
  await button.click();
  await rowLocator.page().getByRole("menu", { name: `Actions for ${id}` }).getByRole("menuitem", { name }).click();
  return button;
}

async function waitForSnapshotState(page, id, state) {
  await page.locator(`tr[data-snapshot-id="${id}"][data-state="${state}"]`).waitFor();
}

async function tagsOf(locator) {
  return (await locator.locator("ul.tags li").allTextContents()).sort();
}

describe("snapvol web console", () => {
  before(async () => {
    rmSync(ARTIFACTS, { recursive: true, force: true }); // this run's screenshots only
    // Every account's default lifecycle policy runs daily at --default-time: put it 12 hours
    // away, so that it never takes snapshots while the tests count them.
    // "ops" owns a lifecycle policy due at a minute that comes ~20 s from now on the schedules'
    // clock (scheduleClockArgs), to show a real run by the time the policies test looks.
    const soon = scheduleClockArgs(20);
    svc = await new Service(["--default-time", defaultTimeFromNow(), ...soon.args]).start();
    svc.addAccount("team-1");
    svc.addAccount("team-2");
    svc.addInstance("team-1", "app-1");
    svc.addVolume("team-1", "web1", { seed: 2 });
    svc.addVolume("team-1", "app-boot", { seed: 3, instance: "app-1", device: "/dev/xvda", boot: true });
    svc.addVolume("team-1", "app-data", { seed: 4, instance: "app-1", device: "/dev/xvdb" });
    svc.addVolume("team-2", "t2-vol", { seed: 5 });
    const ops = svc.addAccount("ops");
    svc.addVolume("ops", "ops-vol", { seed: 6 });
    made.policyTime = utcHhMm(soon.minutes[0]);
    const created = await signedJsonOutsideBrowser(svc.endpoint, ops, "/policies", "POST", {
      ExecutionRoleArn: `arn:aws:iam::${ops.accountId}:role/console-test`,
      Description: "console test policy",
      State: "ENABLED",
      PolicyDetails: {
        PolicyType: "EBS_SNAPSHOT_MANAGEMENT",
        ResourceTypes: ["VOLUME"],
        TargetTags: [{ Key: "Name", Value: "ops-vol" }],
        Schedules: [
          {
            Name: "console-test",
            CreateRule: { Interval: 24, IntervalUnit: "HOURS", Times: [made.policyTime] },
            RetainRule: { Count: 3 },
          },
        ],
      },
    }, "dlm");
    assert.equal(created.status, 200, JSON.stringify(created.body));
    made.policy = created.body.PolicyId;
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await stopService(svc);
  });

  test("a wrong secret shows the server's code in snapvol's words and stores nothing", async () => {
    const team1 = svc.accounts["team-1"];
    const wrong = "0".repeat(team1.secretAccessKey.length);
    // What the server says to this key with a wrong secret, asked outside the browser.
    const direct = await signedJsonOutsideBrowser(svc.endpoint, { accessKeyId: team1.accessKeyId, secretAccessKey: wrong }, "/api/v1/whoami");
    assert.ok(direct.status >= 400, `wrong secret answered ${direct.status}`);
    const { code, message } = direct.body.error;
    assert.ok(code && message, JSON.stringify(direct.body));

    const page = await openPage();
    await screenshot(page, "sign-in");
    await signIn(page, team1, wrong);
    const alert = page.locator("#sign-in-error");
    await alert.waitFor();
    // The server's code as it was sent; its words ("AWS was not able to validate…") replaced
    // by snapvol's, with what to do (issue 15, item 7).
    assert.equal(await alert.locator(".error-code").textContent(), `(${code})`);
    const words = await alert.textContent();
    assert.doesNotMatch(words, /AWS/, `the error speaks of snapvol, not AWS: ${words} (server: ${message})`);
    assert.match(words, /snapvol did not accept this access key/);
    assert.match(await alert.locator(".error-todo").textContent(), /sign in again/);
    assert.equal(await page.getByTestId("error-note").count(), 1, "the error is shown once");
    await screenshot(page, "sign-in-wrong-secret");
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.equal(await page.getByRole("navigation", { name: "Pages" }).count(), 0);
    await closePage(page);
  });

  test("team-1 creates a snapshot with Name and Owner tags and sees it complete", async () => {
    const page = await signInAs("team-1");
    await goTo(page, "Volumes");
    const web1 = row(page, "data-volume-id", svc.volumes.web1);
    await web1.waitFor();
    for (const name of ["app-boot", "app-data"]) await row(page, "data-volume-id", svc.volumes[name]).waitFor();
    assert.match(await row(page, "data-volume-id", svc.volumes["app-data"]).textContent(), new RegExp(svc.instances["app-1"]));
    await screenshot(page, "volumes");

    await web1.getByRole("button", { name: "Create snapshot" }).click();
    const dialog = page.getByRole("dialog", { name: `Create Snapshot of ${svc.volumes.web1}` });
    await dialog.waitFor();
    // No tag rows at first; Name (the volume's) and Owner (the alias) are one-click suggestions.
    assert.equal(await dialog.locator(".tag-row").count(), 0);
    await dialog.getByLabel("Description").fill("before the upgrade");
    await dialog.getByRole("button", { name: "Use tag Name = web1" }).click();
    await dialog.getByLabel("Tag 1 value").fill("web1-nightly");
    await dialog.getByRole("button", { name: "Use tag Owner = team-1" }).click();
    assert.equal(await dialog.getByLabel("Tag 2 key").inputValue(), "Owner");
    assert.equal(await dialog.getByLabel("Tag 2 value").inputValue(), "team-1");
    await dialog.getByRole("button", { name: "Add Tag" }).click();
    await dialog.getByLabel("Tag 3 key").fill("Env");
    await dialog.getByLabel("Tag 3 value").fill("prod");
    await screenshot(page, "create-snapshot-dialog");
    await dialog.getByRole("button", { name: "Create snapshot" }).click();

    const link = page.locator(".notice a");
    await link.waitFor();
    const id = (await link.textContent()).trim();
    assert.match(id, /^snap-[0-9a-f]{17}$/);
    made.web1Snapshot = id;
    await link.click(); // the snapshots page, filtered by the volume
    await page.getByRole("heading", { level: 1, name: "Snapshots" }).waitFor();
    await waitForSnapshotState(page, id, "completed");
    const r = row(page, "data-snapshot-id", id);
    assert.deepEqual(await tagsOf(r), ["Env=prod", "Name=web1-nightly", "Owner=team-1"]);
    assert.match(await r.textContent(), /before the upgrade/);
    assert.match(await r.textContent(), /1 GiB/);
    assert.equal(await r.locator("progress").count(), 0, "a completed snapshot shows no progress bar");
    await screenshot(page, "snapshots-completed");
    await closePage(page);
  });

  test("team-1 snapshots an instance without its boot volume", async () => {
    const page = await signInAs("team-1");
    await goTo(page, "Instances");
    const inst = row(page, "data-instance-id", svc.instances["app-1"]);
    await inst.waitFor();
    await screenshot(page, "instances");
    await inst.getByRole("button", { name: "Create snapshots" }).click();
    const dialog = page.getByRole("dialog", { name: `Create snapshots of ${svc.instances["app-1"]}` });
    assert.equal(await dialog.getByLabel("Exclude boot volume").isChecked(), true);
    await dialog.getByRole("button", { name: "Add Tag" }).click();
    await dialog.getByLabel("Tag 1 key").fill("Name");
    await dialog.getByLabel("Tag 1 value").fill("app-data");
    await dialog.getByRole("button", { name: "Use tag Owner = team-1" }).click();
    await dialog.getByRole("button", { name: "Create snapshots" }).click();
    const links = page.locator(".notice a");
    await links.first().waitFor();
    assert.equal(await links.count(), 1, "one snapshot: the data volume only");
    made.appSnapshot = (await links.first().textContent()).trim();

    // The snapshot is of the data volume; the boot volume has none.
    await page.goto(`${svc.endpoint}/console/#/snapshots?volume=${svc.volumes["app-data"]}`);
    await waitForSnapshotState(page, made.appSnapshot, "completed");
    assert.deepEqual(await tagsOf(row(page, "data-snapshot-id", made.appSnapshot)), ["Name=app-data", "Owner=team-1"]);
    await page.goto(`${svc.endpoint}/console/#/snapshots?volume=${svc.volumes["app-boot"]}`);
    await page.getByText("No snapshots match these filters.").waitFor();
    await closePage(page);
  });

  test("team-1 filters snapshots by tag, volume and state", async () => {
    assert.ok(made.web1Snapshot && made.appSnapshot, "needs the snapshots of the earlier tests");
    const page = await signInAs("team-1");
    await goTo(page, "Snapshots");
    await row(page, "data-snapshot-id", made.web1Snapshot).waitFor();
    await row(page, "data-snapshot-id", made.appSnapshot).waitFor();

    const filters = page.getByRole("form", { name: "Filter snapshots" });
    await filters.getByLabel("Tag key").fill("Name");
    await filters.getByLabel("Tag value").fill("web1-nightly");
    await filters.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForFunction(() => location.hash.includes("tagValue=web1-nightly"));
    await row(page, "data-snapshot-id", made.web1Snapshot).waitFor();
    await row(page, "data-snapshot-id", made.appSnapshot).waitFor({ state: "detached" });
    assert.equal(await page.locator("tr[data-snapshot-id]").count(), 1);
    await screenshot(page, "snapshots-filter-tag");

    // A tag key alone matches every value; with the state filter, completed ones only.
    await filters.getByLabel("Tag value").fill("");
    await filters.getByLabel("Tag key").fill("Owner");
    await filters.getByLabel("State").selectOption("completed");
    await filters.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForFunction(() => location.hash.includes("state=completed") && !location.hash.includes("tagValue"));
    await row(page, "data-snapshot-id", made.appSnapshot).waitFor();
    await row(page, "data-snapshot-id", made.web1Snapshot).waitFor();
    assert.equal(await page.locator("tr[data-snapshot-id]").count(), 2);

    await filters.getByLabel("State").selectOption("pending");
    await filters.getByRole("button", { name: "Apply filters" }).click();
    await page.getByText("No snapshots match these filters.").waitFor();

    await filters.getByRole("button", { name: "Clear" }).click();
    await page.waitForFunction(() => location.hash === "#/snapshots");
    await row(page, "data-snapshot-id", made.appSnapshot).waitFor();
    await filters.getByLabel("Volume").selectOption(svc.volumes.web1);
    await filters.getByRole("button", { name: "Apply filters" }).click();
    await row(page, "data-snapshot-id", made.appSnapshot).waitFor({ state: "detached" });
    assert.equal(await page.locator("tr[data-snapshot-id]").count(), 1);
    await closePage(page);

    const phone = await signInAs("team-1", PHONE);
    await goTo(phone, "Snapshots");
    await row(phone, "data-snapshot-id", made.web1Snapshot).waitFor();
    await screenshot(phone, "snapshots-phone");
    await closePage(phone);
  });

  test("team-1 pages through snapshots, edits tags, copies and deletes", async () => {
    assert.ok(made.web1Snapshot && made.appSnapshot, "needs the snapshots of the earlier tests");
    // Five more snapshots through the API (set-up), so that five per page makes two pages.
    const team1 = svc.accounts["team-1"];
    for (let i = 0; i < 5; i++)
      await ec2OutsideBrowser(svc.endpoint, team1, "CreateSnapshot", { VolumeId: svc.volumes["app-data"], Description: `extra ${i}` });
    const page = await signInAs("team-1");
    await goTo(page, "Snapshots");
    const pager = page.getByRole("navigation", { name: "Pages of snapshots" });
    await pager.getByLabel("Per page").selectOption("5");
    const rows = page.locator("tr[data-snapshot-id]");
    // 7 rows at 25 per page; exactly 5 once the page of 5 has come back.
    await page.waitForFunction(() => document.querySelectorAll("tr[data-snapshot-id]").length === 5);
    const first = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.snapshotId));
    assert.equal(first.length, 5);
    await pager.getByRole("button", { name: "Next page" }).click();
    await pager.getByText("Page 2").waitFor();
    await page.waitForFunction((ids) => {
      const now = [...document.querySelectorAll("tr[data-snapshot-id]")].map((tr) => tr.dataset.snapshotId);
      return now.length === 2 && now.every((id) => !ids.includes(id));
    }, first);
    assert.equal(await pager.getByRole("button", { name: "Next page" }).isDisabled(), true);
    await screenshot(page, "snapshots-page-2");
    await pager.getByRole("button", { name: "Previous page" }).click();
    await pager.getByText("Page 1").waitFor();
    await page.waitForFunction((ids) => {
      const now = [...document.querySelectorAll("tr[data-snapshot-id]")].map((tr) => tr.dataset.snapshotId);
      return JSON.stringify(now) === JSON.stringify(ids);
    }, first);
    await pager.getByLabel("Per page").selectOption("25");
    await page.locator("tr[data-snapshot-id]:nth-child(7)").waitFor();

    // Tags: rename Name, drop Env.
    const web1 = row(page, "data-snapshot-id", made.web1Snapshot);
    await rowAction(web1, made.web1Snapshot, `Edit tags of ${made.web1Snapshot}`);
    const tagsDialog = page.getByRole("dialog", { name: `Tags of ${made.web1Snapshot}` });
    await tagsDialog.getByLabel("Tag 3 key").waitFor();
    const keys = await tagsDialog.locator(".tag-row input").evaluateAll((inputs) => inputs.map((i) => i.value));
    const envRow = keys.filter((_, i) => i % 2 === 0).indexOf("Env") + 1;
    const nameRow = keys.filter((_, i) => i % 2 === 0).indexOf("Name") + 1;
    assert.ok(envRow > 0 && nameRow > 0, JSON.stringify(keys));
    await tagsDialog.getByLabel(`Tag ${nameRow} value`).fill("web1-renamed");
    await tagsDialog.getByRole("button", { name: `Remove tag ${envRow}` }).click();
    await tagsDialog.getByRole("button", { name: "Save tags" }).click();
    await page.getByText(`Saved the tags of ${made.web1Snapshot}.`).waitFor();
    await page.waitForFunction(
      (id) => [...document.querySelectorAll(`tr[data-snapshot-id="${id}"] ul.tags li`)].map((li) => li.textContent).sort().join(",") === "Name=web1-renamed,Owner=team-1",
      made.web1Snapshot,
    );

    // Copy, then delete the copy after confirming.
    await rowAction(web1, made.web1Snapshot, `Copy ${made.web1Snapshot}`);
    const copyDialog = page.getByRole("dialog", { name: `Copy ${made.web1Snapshot}` });
    await copyDialog.getByLabel("Description of the copy").fill("copy for the test");
    await copyDialog.getByRole("button", { name: "Copy snapshot" }).click();
    const copied = page.getByText(new RegExp(`Copied ${made.web1Snapshot} to snap-[0-9a-f]{17}\\.`));
    await copied.waitFor();
    const copyId = /to (snap-[0-9a-f]{17})/.exec(await copied.textContent())[1];
    await waitForSnapshotState(page, copyId, "completed");
    assert.match(await row(page, "data-snapshot-id", copyId).textContent(), /copy for the test/);
    // Escape closes the confirmation and deletes nothing; the second time it is confirmed.
    const menuButton = await rowAction(row(page, "data-snapshot-id", copyId), copyId, `Delete ${copyId}`);
    const del = page.getByRole("dialog", { name: `Delete ${copyId}?` });
    await del.waitFor();
    await page.keyboard.press("Escape");
    await del.waitFor({ state: "detached" });
    assert.equal(await menuButton.evaluate((b) => b === document.activeElement), true, "focus returns to the row's menu button");
    await row(page, "data-snapshot-id", copyId).waitFor();
    await rowAction(row(page, "data-snapshot-id", copyId), copyId, `Delete ${copyId}`);
    await del.waitFor();
    await screenshot(page, "delete-confirmation");
    await del.getByRole("button", { name: "Delete snapshot" }).click();
    await page.getByText(`Deleted ${copyId}.`).waitFor();
    await row(page, "data-snapshot-id", copyId).waitFor({ state: "detached" });
    await row(page, "data-snapshot-id", made.web1Snapshot).waitFor();
    await closePage(page);
  });

  test("team-1's restore is refused by the server and becomes a request; sign-out clears the key", async () => {
    assert.ok(made.web1Snapshot, "needs the snapshot of an earlier test");
    const page = await signInAs("team-1");
    await goTo(page, "Snapshots");
    const r = row(page, "data-snapshot-id", made.web1Snapshot);
    await rowAction(r, made.web1Snapshot, `Restore ${made.web1Snapshot}`);
    const dialog = page.getByRole("dialog", { name: `Restore ${made.web1Snapshot}` });
    await dialog.locator(".server-message").waitFor();
    assert.equal(await dialog.locator(".server-message").textContent(), UNAUTHORIZED);
    await dialog.getByLabel("Reason for the restore").fill("config overwritten by the upgrade");
    await screenshot(page, "restore-refused-request");
    await dialog.getByRole("button", { name: "Request restore" }).click();
    const rr = dialog.getByTestId("restore-request-id");
    await rr.waitFor();
    made.restoreRequest = (await rr.textContent()).trim();
    assert.match(made.restoreRequest, /^rr-[0-9a-f]+$/);
    await dialog.getByRole("button", { name: "Close" }).click();

    await goTo(page, "Restore requests");
    const req = row(page, "data-request-id", made.restoreRequest);
    await req.waitFor();
    assert.equal(await req.getAttribute("data-state"), "pending");
    assert.match(await req.textContent(), /config overwritten by the upgrade/);
    assert.equal(await req.getByRole("button", { name: /Approve|Actions for/ }).count(), 0, "members cannot approve (no row menu)");
    await screenshot(page, "restore-requests-member");

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to snapvol" }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await page.reload();
    await page.getByRole("heading", { name: "Sign in to snapvol" }).waitFor();
    await closePage(page);
  });

  test("the administrator approves the request and sees the new volume", async () => {
    assert.ok(made.restoreRequest, "needs the restore request of an earlier test");
    const page = await signInAs("admin");
    // A second request (filed through the API) that the administrator rejects.
    const filed = await signedJsonOutsideBrowser(svc.endpoint, svc.accounts["team-1"], "/api/v1/restore-requests", "POST", {
      snapshotId: made.appSnapshot,
      reason: "just curious",
    });
    assert.equal(filed.status, 200, JSON.stringify(filed.body));
    const rejectId = filed.body.restoreRequest.restoreRequestId;

    await goTo(page, "Restore requests");
    const req = row(page, "data-request-id", made.restoreRequest);
    await req.waitFor();
    // The requester is named by its account's alias (the id on hover), not by a bare id.
    const account = req.locator('td[data-label="Account"] .account-name');
    await account.waitFor();
    assert.equal(await account.textContent(), "team-1");
    assert.equal(await account.getAttribute("title"), svc.accounts["team-1"].accountId);
    await screenshot(page, "restore-requests-admin");
    await rowAction(row(page, "data-request-id", rejectId), rejectId, `Reject ${rejectId}`);
    const rejectDialog = page.getByRole("dialog", { name: `Reject ${rejectId}` });
    await rejectDialog.getByLabel("Reason for the decision").fill("no business need");
    await rejectDialog.getByRole("button", { name: "Reject" }).click();
    await page.locator(`tr[data-request-id="${rejectId}"][data-state="rejected"]`).waitFor();
    assert.match(await row(page, "data-request-id", rejectId).textContent(), /no business need/);

    await rowAction(req, made.restoreRequest, `Approve ${made.restoreRequest}`);
    const dialog = page.getByRole("dialog", { name: `Approve ${made.restoreRequest}` });
    await dialog.getByLabel("Reason for the decision").fill("checked with team-1");
    await dialog.getByRole("button", { name: "Approve" }).click();
    await page.locator(`tr[data-request-id="${made.restoreRequest}"][data-state="approved"]`).waitFor();
    const vol = req.getByTestId("restored-volume");
    await vol.locator(".state-available").waitFor();
    const volumeId = (await vol.locator("code").textContent()).trim();
    assert.match(volumeId, /^vol-[0-9a-f]{17}$/);
    assert.match(await req.textContent(), /checked with team-1/);
    await screenshot(page, "restore-approved");

    // An administrator restores directly: team-1's other snapshot, picked with the account filter.
    await goTo(page, "Snapshots");
    const filters = page.getByRole("form", { name: "Filter snapshots" });
    await filters.getByLabel("Account").selectOption(svc.accounts["team-1"].accountId);
    await filters.getByRole("button", { name: "Apply filters" }).click();
    const app = row(page, "data-snapshot-id", made.appSnapshot);
    await rowAction(app, made.appSnapshot, `Restore ${made.appSnapshot}`);
    const restore = page.getByRole("dialog", { name: `Restore ${made.appSnapshot}` });
    await restore.getByRole("button", { name: "Restore to a new volume" }).click();
    const direct = restore.getByTestId("restored-volume");
    await direct.waitFor();
    assert.match(await direct.textContent(), /^vol-[0-9a-f]{17}$/);
    await restore.locator(".state-available").waitFor();
    await screenshot(page, "restore-admin-direct");
    await restore.getByRole("button", { name: "Close" }).click();

    await goTo(page, "Accounts and keys");
    for (const alias of ["team-1", "team-2"]) await row(page, "data-account-id", svc.accounts[alias].accountId).waitFor();
    // A new team with a key; the secret is shown once, and it signs in.
    await page.getByLabel("New account alias").fill("team-3");
    await page.getByRole("button", { name: "Create account" }).click();
    const team3 = page.locator("tr[data-account-id]", { hasText: "team-3" });
    await team3.waitFor();
    await team3.getByRole("button", { name: "Create access key for team-3" }).click();
    const keyDialog = page.getByRole("dialog", { name: "New access key for team-3" });
    const newKey = {
      alias: "team-3",
      accessKeyId: (await keyDialog.getByTestId("new-access-key-id").textContent()).trim(),
      secretAccessKey: (await keyDialog.getByTestId("new-secret-access-key").textContent()).trim(),
    };
    await keyDialog.getByRole("button", { name: "I have saved it" }).click();
    await team3.getByText(newKey.accessKeyId).waitFor();
    assert.equal(await page.getByText(newKey.secretAccessKey).count(), 0, "the secret is not shown again");
    await screenshot(page, "accounts");
    const t3 = await openPage();
    await signIn(t3, newKey);
    await t3.getByTestId("whoami").filter({ hasText: "team-3" }).waitFor();
    await closePage(t3);
    await goTo(page, "Audit log");
    await page.locator('tr[data-action="CreateVolume"]').first().waitFor();
    // Whose log it is: each host keeps its own (the requests it answered).
    const hostId = readFileSync(join(svc.dataDir, "host-id"), "utf8").trim();
    assert.match(await page.getByTestId("audit-host").textContent(), new RegExp(`The log of host \\S+ \\(${hostId}\\), the one that answered`));
    await screenshot(page, "audit");
    // Maintenance jobs: an administrator queues a GC; the daemon runs it and the page shows it.
    await goTo(page, "Maintenance jobs");
    await page.getByText(/Garbage collection: daily at 04:00 UTC/).waitFor();
    await page.getByRole("button", { name: "Run GC now" }).click();
    const queued = await page.getByRole("status").filter({ hasText: /Queued gc run \d+/ }).textContent();
    const runId = queued.match(/run (\d+)/)[1];
    for (let i = 0; i < 200; i++) {
      await page.getByRole("button", { name: "Refresh" }).click();
      if ((await page.locator(`tr[data-run="${runId}"][data-state="succeeded"]`).count()) === 1) break;
      await page.waitForTimeout(100);
    }
    const gcRow = page.locator(`tr[data-run="${runId}"]`);
    assert.equal(await gcRow.getAttribute("data-state"), "succeeded");
    assert.match(await gcRow.textContent(), /freed/);
    // A restore drill, asked for the same way: shown as one, with what it restored.
    await page.getByText(/Restore drills: off/).waitFor();
    await page.getByRole("button", { name: "Run a restore drill now" }).click();
    const drillQueued = await page.getByRole("status").filter({ hasText: /Queued drill run \d+/ }).textContent();
    const drillId = drillQueued.match(/run (\d+)/)[1];
    for (let i = 0; i < 300; i++) {
      await page.getByRole("button", { name: "Refresh" }).click();
      if ((await page.locator(`tr[data-run="${drillId}"][data-state="succeeded"]`).count()) === 1) break;
      await page.waitForTimeout(100);
    }
    const drillRow = page.locator(`tr[data-run="${drillId}"]`);
    assert.equal(await drillRow.getAttribute("data-state"), "succeeded", await drillRow.textContent());
    assert.match(await drillRow.textContent(), /Restore drill/);
    assert.match(await drillRow.textContent(), /[1-9]\d* snapshots restored/);
    assert.match(await drillRow.textContent(), /every block matched its id/);
    await screenshot(page, "jobs");
    await closePage(page);

    // The member sees the restored volume in its account.
    const member = await signInAs("team-1");
    await goTo(member, "Volumes");
    const restored = row(member, "data-volume-id", volumeId);
    await restored.waitFor();
    assert.match(await restored.textContent(), new RegExp(`restored from ${made.web1Snapshot}`));
    await closePage(member);
  });

  test("team-2, signing in by keyboard, sees none of team-1's snapshots or volumes", async () => {
    const page = await openPage();
    const team2 = svc.accounts["team-2"];
    await page.getByLabel("Access key ID").focus();
    await page.keyboard.type(team2.accessKeyId);
    await page.keyboard.press("Tab");
    await page.keyboard.type(team2.secretAccessKey);
    await page.keyboard.press("Enter");
    await page.getByTestId("whoami").filter({ hasText: "team-2" }).waitFor();

    await goTo(page, "Snapshots");
    await page.getByText("No snapshots yet.").waitFor();
    assert.equal(await page.locator("tr[data-snapshot-id]").count(), 0);
    await screenshot(page, "snapshots-team-2");
    // Not even when asked for team-1's volume by id.
    await page.goto(`${svc.endpoint}/console/#/snapshots?volume=${svc.volumes.web1}`);
    await page.getByText("No snapshots match these filters.").waitFor();

    await goTo(page, "Volumes");
    await row(page, "data-volume-id", svc.volumes["t2-vol"]).waitFor();
    assert.equal(await page.locator("tr[data-volume-id]").count(), 1);
    await goTo(page, "Restore requests");
    await page.getByText("No restore requests.").waitFor();
    await closePage(page);
  });

  test("lifecycle policies: see and edit the daily time and retention; the last runs", async () => {
    assert.ok(made.policy, "needs the policy made in set-up");
    const ops = svc.accounts.ops;
    const page = await signInAs("ops");
    await goTo(page, "Lifecycle policies");
    const mine = row(page, "data-policy-id", made.policy);
    await mine.waitFor();
    assert.match(await mine.textContent(), new RegExp(`every 24 hours at ${made.policyTime} UTC`));
    assert.match(await mine.textContent(), /keep 3/);
    assert.match(await mine.textContent(), /Name=ops-vol/);
    // The account's default policy: daily, keep 7.
    const listed = await page.locator("tr[data-policy-id]").evaluateAll((trs) => trs.map((tr) => tr.dataset.policyId));
    const defaults = listed.filter((id) => id !== made.policy);
    assert.equal(defaults.length, 1, JSON.stringify(listed));
    const def = row(page, "data-policy-id", defaults[0]);
    assert.match(await def.textContent(), /keep 7/);

    await def.getByRole("button", { name: `Edit ${defaults[0]}` }).click();
    const dialog = page.getByRole("dialog", { name: `Edit ${defaults[0]}` });
    await dialog.getByLabel("Daily time (UTC)").fill("03:30");
    await dialog.getByLabel("Snapshots to keep").fill("14");
    // DLM allows only letters, digits, spaces, _ and - in a description: the dialog says so
    // beside the field before anything is sent, and stays open with what was typed.
    let patches = 0;
    page.on("request", (r) => r.method() === "PATCH" && new URL(r.url()).pathname.startsWith("/policies/") && (patches += 1));
    await dialog.getByLabel("Description").fill("nightly (ops)!");
    await dialog.getByRole("button", { name: "Save policy" }).click();
    await dialog.getByTestId("not-sent").waitFor();
    const description = dialog.getByLabel("Description");
    assert.equal(await description.getAttribute("aria-invalid"), "true");
    const refusal = dialog.locator(`[id="${await description.getAttribute("id")}-error"]`);
    assert.match(await refusal.textContent(), /Only letters, digits, spaces, _ and - are allowed \(not \( \) !\)/);
    assert.equal(patches, 0, "nothing sent while the description is refused");
    assert.equal(await dialog.getByLabel("Daily time (UTC)").inputValue(), "03:30");
    await screenshot(page, "policy-edit-refused");
    await dialog.getByLabel("Description").fill("nightly for ops");
    await dialog.getByRole("button", { name: "Save policy" }).click();
    await dialog.waitFor({ state: "detached" });
    await def.filter({ hasText: "at 03:30 UTC" }).filter({ hasText: "keep 14" }).filter({ hasText: "nightly for ops" }).waitFor();
    // The server has it, as DLM's API shows it.
    const stored = await signedJsonOutsideBrowser(svc.endpoint, ops, `/policies/${defaults[0]}/`, "GET", undefined, "dlm");
    const schedule = stored.body.Policy.PolicyDetails.Schedules[0];
    assert.deepEqual(schedule.CreateRule.Times, ["03:30"]);
    assert.equal(schedule.RetainRule.Count, 14);

    // The policy due in set-up runs by the daemon's own clock; its run shows up here.
    await mine.getByRole("button", { name: `Runs of ${made.policy}` }).click();
    const runs = page.getByRole("table", { name: `Runs of ${made.policy}` });
    await runs.locator('tr[data-run-state="succeeded"]').waitFor({ timeout: POLICY_RUN_WAIT_MS });
    assert.match(await runs.locator('tr[data-run-state="succeeded"]').first().textContent(), /1 created, 0 failed/);
    await screenshot(page, "policy-runs");
    await closePage(page);
  });
});
