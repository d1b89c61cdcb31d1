// The lists (issue 15, item 3 and the lists of item 6): sorting, search, selection with bulk
// delete and bulk tag, the row menu by keyboard, copy, layout at 1,280×800 and 390 px, and for
// administrators every account's volumes with their aliases and a restore followed to
// initialization-state `completed`. What the browser changed is read back with EC2 requests
// signed outside it.
// Run: node --test tests/console/lists.test.mjs   (environment: see harness.mjs)

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  closeConsolePage,
  countEc2Requests,
  defaultTimeFromNow,
  describeSnapshotsOutsideBrowser,
  ec2OutsideBrowser,
  gainsFocus,
  goTo,
  launchBrowser,
  screenshot,
  Service,
  signedInConsolePage,
  signedJsonOutsideBrowser,
  stopService,
  WAIT_MS,
} from "./harness.mjs";

const PHONE = { width: 390, height: 844 };
const LONG_VALUE = "v".repeat(120) + "W".repeat(136); // 256 characters, no place to break
const LONG_DESCRIPTION = "d".repeat(255);

let svc;
let browser;
/** blue's snapshots made in set-up, oldest first: [{id, description}] */
const made = [];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function createSnapshot(alias, volume, description, tags = []) {
  const params = { VolumeId: svc.volumes[volume], Description: description };
  if (tags.length) {
    params["TagSpecification.1.ResourceType"] = "snapshot";
    tags.forEach(([k, v], i) => {
      params[`TagSpecification.1.Tag.${i + 1}.Key`] = k;
      params[`TagSpecification.1.Tag.${i + 1}.Value`] = v;
    });
  }
  const xml = await ec2OutsideBrowser(svc.endpoint, svc.accounts[alias], "CreateSnapshot", params);
  const id = /<snapshotId>(snap-[0-9a-f]{17})<\/snapshotId>/.exec(xml)[1];
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const d = await ec2OutsideBrowser(svc.endpoint, svc.accounts[alias], "DescribeSnapshots", { "SnapshotId.1": id });
    if (/<status>completed<\/status>/.test(d)) return id;
    if (Date.now() > deadline) throw new Error(`${id} did not complete: ${d}`);
    await sleep(100);
  }
}

const signedIn = (alias, viewport) => signedInConsolePage(browser, svc, alias, viewport);

const shownSnapshotIds = (page) => page.locator("tr[data-snapshot-id]").evaluateAll((trs) => trs.map((tr) => tr.dataset.snapshotId));

/** Waits until the Snapshots table shows exactly `ids`, in this order. */
async function waitForOrder(page, ids) {
  try {
    await page.waitForFunction(
      (want) => JSON.stringify([...document.querySelectorAll("tr[data-snapshot-id]")].map((tr) => tr.dataset.snapshotId)) === JSON.stringify(want),
      ids,
      { timeout: 10_000 },
    );
  } catch {
    assert.deepEqual(await shownSnapshotIds(page), ids);
  }
}

/** The page cannot be scrolled sideways, and the table ends inside the window. */
async function assertNoSidewaysScroll(page, what) {
  const m = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
    tableRight: Math.max(0, ...[...document.querySelectorAll("table.list")].map((t) => t.getBoundingClientRect().right)),
  }));
  assert.ok(m.scroll <= m.client, `${what}: the page is ${m.scroll} px wide in a ${m.client} px window`);
  assert.ok(m.tableRight <= m.client, `${what}: the table ends at ${m.tableRight} px in a ${m.client} px window`);
}

describe("Lists: sort, search, select, bulk actions, row menus, accounts", () => {
  before(async () => {
    // The default lifecycle policy runs 12 hours away, so only these tests make snapshots.
    svc = await new Service(["--default-time", defaultTimeFromNow()]).start();
    svc.addAccount("blue");
    svc.addAccount("green");
    svc.addVolume("blue", "b1", { seed: 21 });
    svc.addVolume("blue", "b2", { seed: 22 });
    svc.addVolume("green", "g1", { seed: 23 });
    // Four snapshots a second or more apart (ids are random, so id order is not time order).
    const specs = [
      ["b1", "first of all", [["Name", "alpha"], ["Env", "Production-EU"]]],
      ["b2", "the second one", [["Env", "staging"]]],
      ["b1", LONG_DESCRIPTION, [["Note", LONG_VALUE]]],
      ["b2", "fourth and newest", [["Name", "omega"]]],
    ];
    for (const [i, [vol, description, tags]] of specs.entries()) {
      if (i > 0) await sleep(1100);
      made.push({ id: await createSnapshot("blue", vol, description, tags), description });
    }
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await stopService(svc);
  });

  test("snapshots are newest first by default; the Started header sorts oldest first, then back", async () => {
    const page = await signedIn("blue");
    await goTo(page, "Snapshots");
    const newestFirst = made.map((m) => m.id).reverse();
    await waitForOrder(page, newestFirst);
    const started = page.getByRole("columnheader", { name: /Started/ });
    assert.equal(await started.getAttribute("aria-sort"), "descending");
    // The times shown say the same: each row's start is at or after the next one's.
    const times = await page.locator('tr[data-snapshot-id] td[data-label="Started"] time').evaluateAll((ts) => ts.map((t) => Date.parse(t.dateTime)));
    assert.deepEqual([...times].sort((a, b) => b - a), times);
    assert.ok(times[0] - times[3] >= 3000, "set-up made them at least a second apart");

    await started.getByRole("button").click();
    await waitForOrder(page, [...newestFirst].reverse());
    assert.equal(await started.getAttribute("aria-sort"), "ascending");
    await started.getByRole("button").click();
    await waitForOrder(page, newestFirst);
    assert.equal(await started.getAttribute("aria-sort"), "descending");
    // Another column: by description, A to Z; Started no longer claims the order.
    const description = page.getByRole("columnheader", { name: /Description/ });
    await description.getByRole("button").click();
    assert.equal(await description.getAttribute("aria-sort"), "ascending");
    assert.equal(await started.getAttribute("aria-sort"), null);
    const byDescription = [...made].sort((a, b) => a.description.localeCompare(b.description)).map((m) => m.id);
    await waitForOrder(page, byDescription);
    await closeConsolePage(page);
  });

  test("the search finds a tag value by any part of it, in any case, and shows only the matching rows", async () => {
    const page = await signedIn("blue");
    await goTo(page, "Snapshots");
    await waitForOrder(page, made.map((m) => m.id).reverse());
    const search = page.getByLabel("Search snapshots");
    assert.match(await page.locator("#snapshot-search-hint").textContent(), /tag keys and values/);
    // "Production-EU" by a middle part in other case.
    await search.fill("DUCTION-e");
    await waitForOrder(page, [made[0].id]);
    assert.match(await page.getByTestId("search-count").textContent(), /^1 of 4 match/);
    // A tag key, a description part, a volume id: each exactly the rows that have it.
    await search.fill("nOtE");
    await waitForOrder(page, [made[2].id]);
    await search.fill("SECOND");
    await waitForOrder(page, [made[1].id]);
    await search.fill(svc.volumes.b2);
    await waitForOrder(page, [made[3].id, made[1].id]);
    await search.fill("staging-not-there");
    await page.getByText("No snapshot matches “staging-not-there”.").waitFor();
    assert.equal(await page.locator("tr[data-snapshot-id]").count(), 0);
    await search.fill("");
    await waitForOrder(page, made.map((m) => m.id).reverse());
    await closeConsolePage(page);
  });

  test("bulk tag: the selected snapshots get the tag, the others do not (read back outside the browser)", async () => {
    const page = await signedIn("blue");
    await goTo(page, "Snapshots");
    await waitForOrder(page, made.map((m) => m.id).reverse());
    const [a, b] = [made[0].id, made[1].id];
    // Select all takes exactly the rows shown: after a search, only those.
    await page.getByLabel("Search snapshots").fill("night-");
    await page.getByText("No snapshot matches “night-”.").waitFor();
    await page.getByLabel("Search snapshots").fill("ALPHA");
    await waitForOrder(page, [a]);
    await page.getByLabel("Select all 1 shown").check();
    assert.equal(await page.getByTestId("selected-count").textContent(), "1 selected");
    await page.getByLabel("Search snapshots").fill("");
    await waitForOrder(page, made.map((m) => m.id).reverse());
    await page.getByLabel("Select all 4 shown").check();
    assert.equal(await page.getByTestId("selected-count").textContent(), "4 selected");
    await page.getByLabel("Select all 4 shown").uncheck();
    assert.equal(await page.getByTestId("selected-count").textContent(), "0 selected");
    await page.getByLabel(`Select ${a}`).check();
    await page.getByLabel(`Select ${b}`).check();
    assert.equal(await page.getByTestId("selected-count").textContent(), "2 selected");
    await page.getByRole("button", { name: "Tag selected…" }).click();
    const dialog = page.getByRole("dialog", { name: "Tag 2 snapshots" });
    await dialog.waitFor();
    for (const id of [a, b]) assert.match(await dialog.textContent(), new RegExp(id));
    await dialog.getByRole("button", { name: "Add Tag", exact: true }).click();
    await dialog.getByLabel("Tag 1 key").fill("Batch");
    await dialog.getByLabel("Tag 1 value").fill("Night-7");
    await dialog.getByRole("button", { name: "Add tags to 2" }).click();
    await dialog.getByTestId("bulk-summary").filter({ hasText: "Tagged 2 of 2." }).waitFor();
    await dialog.getByRole("button", { name: "Close" }).click();

    const snaps = await describeSnapshotsOutsideBrowser(page, svc.endpoint, svc.accounts.blue);
    const batch = (id) => snaps.find((s) => s.snapshotId === id).tags.find((t) => t.key === "Batch")?.value;
    assert.equal(batch(a), "Night-7");
    assert.equal(batch(b), "Night-7");
    assert.equal(batch(made[2].id), undefined);
    assert.equal(batch(made[3].id), undefined);
    // Their other tags stay.
    assert.deepEqual(snaps.find((s) => s.snapshotId === a).tags.map((t) => t.key), ["Batch", "Env", "Name"]);
    await closeConsolePage(page);
  });

  test("bulk delete lists exactly the ids it deletes and reports each failure by id", async () => {
    const d1 = await createSnapshot("blue", "b1", "to delete 1");
    const d2 = await createSnapshot("blue", "b2", "to delete 2");
    const d3 = await createSnapshot("blue", "b2", "to delete 3");
    const page = await signedIn("blue");
    await goTo(page, "Snapshots");
    for (const id of [d1, d2, d3]) await page.getByLabel(`Select ${id}`).check();
    await page.getByRole("button", { name: "Delete selected…" }).click();
    const dialog = page.getByRole("dialog", { name: "Delete 3 snapshots?" });
    await dialog.waitFor();
    const listed = await dialog.getByTestId("bulk-delete-ids").locator("li").allTextContents();
    assert.deepEqual([...listed].sort(), [d1, d2, d3].sort());
    // One of them goes away behind the console's back: its failure is shown on its own line.
    await ec2OutsideBrowser(svc.endpoint, svc.accounts.blue, "DeleteSnapshot", { SnapshotId: d2 });
    await dialog.getByRole("button", { name: "Delete 3 snapshots" }).click();
    await dialog.getByTestId("bulk-summary").filter({ hasText: "Deleted 2 of 3; 1 failed." }).waitFor();
    const outcome = (id) => dialog.locator(`li[data-snapshot-id="${id}"]`);
    assert.equal(await outcome(d1).getAttribute("data-outcome"), "ok");
    assert.equal(await outcome(d3).getAttribute("data-outcome"), "ok");
    assert.equal(await outcome(d2).getAttribute("data-outcome"), "failed");
    assert.match(await outcome(d2).textContent(), /InvalidSnapshot\.NotFound/);
    await screenshot(page, "bulk-delete-result");
    await dialog.getByRole("button", { name: "Close" }).click();
    await page.locator(`tr[data-snapshot-id="${d1}"]`).waitFor({ state: "detached" });

    const left = (await describeSnapshotsOutsideBrowser(page, svc.endpoint, svc.accounts.blue)).map((s) => s.snapshotId);
    for (const id of [d1, d2, d3]) assert.ok(!left.includes(id), `${id} is gone`);
    for (const m of made) assert.ok(left.includes(m.id), `${m.id} was not selected and stays`);
    await closeConsolePage(page);
  });

  test("a pending snapshot is not offered for deletion, alone or in a bulk delete", async () => {
    // A snapshot of these small volumes is pending for a moment only, so the browser is shown
    // one as pending: DescribeSnapshots' answers are passed on with its status rewritten.
    const page = await signedIn("blue");
    const pendingId = made[0].id;
    await page.route(`${svc.endpoint}/`, async (route) => {
      const req = route.request();
      if (req.method() !== "POST" || !/(^|&)Action=DescribeSnapshots(&|$)/.test(req.postData() ?? "")) return route.continue();
      const res = await route.fetch();
      const body = (await res.text()).replace(
        new RegExp(`(<snapshotId>${pendingId}</snapshotId>[\\s\\S]*?<status>)completed(</status>)`),
        "$1pending$2",
      );
      await route.fulfill({ response: res, body });
    });
    await goTo(page, "Snapshots");
    await page.locator(`tr[data-snapshot-id="${pendingId}"][data-state="pending"]`).waitFor();
    const items = async (id) => {
      await page.getByRole("button", { name: `Actions for ${id}` }).click();
      const texts = await page.getByRole("menu", { name: `Actions for ${id}` }).getByRole("menuitem").allTextContents();
      await page.keyboard.press("Escape");
      return texts;
    };
    assert.deepEqual(await items(pendingId), ["Edit tags", "Copy", "Restore"]);
    assert.deepEqual(await items(made[1].id), ["Edit tags", "Copy", "Restore", "Delete"]);
    const sent = countEc2Requests(page, "DeleteSnapshot");
    await page.getByLabel(`Select ${pendingId}`).check();
    await page.getByLabel(`Select ${made[1].id}`).check();
    await page.getByRole("button", { name: "Delete selected…" }).click();
    const dialog = page.getByRole("dialog", { name: "Delete 1 snapshot?" });
    await dialog.waitFor();
    assert.deepEqual(await dialog.getByTestId("bulk-delete-ids").locator("li").allTextContents(), [made[1].id]);
    assert.match(await dialog.getByTestId("bulk-delete-skipped").textContent(), new RegExp(`pending.*${pendingId}`));
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "detached" });
    assert.equal(sent.count, 0, "nothing deleted on Cancel");
    // The page polls while it shows a pending snapshot: a poll still in the route handler when
    // the context closes would reject after the test ended.
    await page.unrouteAll({ behavior: "ignoreErrors" });
    await closeConsolePage(page);
  });

  test("the row menu works by keyboard (arrows, Home, End, Escape) and focus returns to its button", async () => {
    const page = await signedIn("blue");
    await goTo(page, "Snapshots");
    const id = made[1].id;
    const button = page.getByRole("button", { name: `Actions for ${id}` });
    await button.focus();
    assert.equal(await button.getAttribute("aria-haspopup"), "menu");
    assert.equal(await button.getAttribute("aria-expanded"), "false");
    await page.keyboard.press("Enter");
    const menu = page.getByRole("menu", { name: `Actions for ${id}` });
    await menu.waitFor();
    assert.equal(await button.getAttribute("aria-expanded"), "true");
    const item = (name) => menu.getByRole("menuitem", { name });
    assert.deepEqual(await menu.getByRole("menuitem").allTextContents(), ["Edit tags", "Copy", "Restore", "Delete"]);
    assert.equal(await gainsFocus(item(`Edit tags of ${id}`)), true, "Enter opens on the first item");
    await page.keyboard.press("ArrowDown");
    assert.equal(await gainsFocus(item(`Copy ${id}`)), true);
    await page.keyboard.press("End");
    assert.equal(await gainsFocus(item(`Delete ${id}`)), true);
    await page.keyboard.press("ArrowDown");
    assert.equal(await gainsFocus(item(`Edit tags of ${id}`)), true, "Down from the last wraps to the first");
    await page.keyboard.press("ArrowUp");
    assert.equal(await gainsFocus(item(`Delete ${id}`)), true, "Up from the first wraps to the last");
    await page.keyboard.press("Home");
    assert.equal(await gainsFocus(item(`Edit tags of ${id}`)), true);
    await page.keyboard.press("Escape");
    await menu.waitFor({ state: "detached" });
    assert.equal(await gainsFocus(button), true, "Escape returns focus to the menu button");
    assert.equal(await button.getAttribute("aria-expanded"), "false");

    // Up opens on the last item; Enter on an item opens its dialog, whose Escape returns
    // focus to the menu button.
    await page.keyboard.press("ArrowUp");
    assert.equal(await gainsFocus(item(`Delete ${id}`)), true);
    await page.keyboard.press("ArrowUp");
    await page.keyboard.press("ArrowUp");
    assert.equal(await gainsFocus(item(`Copy ${id}`)), true);
    await page.keyboard.press("Enter");
    const copy = page.getByRole("dialog", { name: `Copy ${id}` });
    await copy.waitFor();
    await screenshot(page, "row-menu-copy-dialog");
    await page.keyboard.press("Escape");
    await copy.waitFor({ state: "detached" });
    assert.equal(await gainsFocus(button), true, "the dialog hands focus back to the menu button");
    await closeConsolePage(page);
  });

  test("long values do not widen the page at 1,280×800 or 390 px; hover shows them whole; ids copy", async () => {
    const page = await signedIn("blue");
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: svc.endpoint });
    await goTo(page, "Snapshots");
    const longRow = page.locator(`tr[data-snapshot-id="${made[2].id}"]`);
    await longRow.waitFor();
    await assertNoSidewaysScroll(page, "snapshots at 1280");
    assert.equal(await longRow.locator("ul.tags li").first().getAttribute("title"), `Note=${LONG_VALUE}`);
    assert.equal(await longRow.locator(".lv-desc").getAttribute("title"), LONG_DESCRIPTION);
    await longRow.getByRole("button", { name: `Copy ID ${made[2].id}` }).click();
    await longRow.getByText("Copied").waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), made[2].id);
    await screenshot(page, "snapshots-1280");
    // The row menu opened on the last column stays inside the window too.
    await page.getByRole("button", { name: `Actions for ${made[2].id}` }).click();
    await page.getByRole("menu").waitFor();
    await assertNoSidewaysScroll(page, "snapshots at 1280 with a menu open");
    await page.keyboard.press("Escape");
    await goTo(page, "Volumes");
    await page.locator(`tr[data-volume-id="${svc.volumes.b1}"]`).waitFor();
    await assertNoSidewaysScroll(page, "volumes at 1280");
    await screenshot(page, "volumes-1280");
    await closeConsolePage(page);

    const phone = await signedIn("blue", PHONE);
    await goTo(phone, "Snapshots");
    await phone.locator(`tr[data-snapshot-id="${made[2].id}"]`).waitFor();
    await assertNoSidewaysScroll(phone, "snapshots at 390");
    // Headers are hidden on a phone: the sort is a select there, and it sorts.
    await phone.getByLabel("Sort by").selectOption("started:ascending");
    await waitForOrder(phone, made.map((m) => m.id));
    await screenshot(phone, "snapshots-390");
    await goTo(phone, "Volumes");
    await phone.locator(`tr[data-volume-id="${svc.volumes.b1}"]`).waitFor();
    await assertNoSidewaysScroll(phone, "volumes at 390");
    await screenshot(phone, "volumes-390");
    await closeConsolePage(phone);
  });

  test("administrator: All accounts shows another account's volume with its alias and exact size; one account narrows it", async () => {
    const page = await signedIn("admin");
    await goTo(page, "Volumes");
    const switcher = page.getByLabel("Account", { exact: true });
    assert.equal(await switcher.inputValue(), "all");
    const g1 = page.locator(`tr[data-volume-id="${svc.volumes.g1}"]`);
    await g1.waitFor();
    await page.locator(`tr[data-volume-id="${svc.volumes.b1}"]`).waitFor();
    const alias = g1.locator('td[data-label="Account"] .account-name');
    await alias.waitFor();
    assert.equal(await alias.textContent(), "green");
    assert.equal(await alias.getAttribute("title"), svc.accounts.green.accountId);
    assert.equal((await g1.locator('td[data-label="Size"]').textContent()).trim(), "16 MiB");
    await screenshot(page, "volumes-admin-all-accounts");
    // Searching by the alias finds green's volume only.
    await page.getByLabel("Search volumes").fill("GREE");
    await g1.waitFor();
    await page.locator(`tr[data-volume-id="${svc.volumes.b1}"]`).waitFor({ state: "detached" });
    await page.getByLabel("Search volumes").fill("");
    await switcher.selectOption(svc.accounts.blue.accountId);
    await g1.waitFor({ state: "detached" });
    // g1 goes as soon as the list reloads; wait for blue's own row before reading the accounts shown.
    await page.locator(`tr[data-volume-id="${svc.volumes.b1}"]`).waitFor();
    const accounts = await page.locator("tr[data-volume-id]").evaluateAll((trs) => [...new Set(trs.map((tr) => tr.dataset.accountId))]);
    assert.deepEqual(accounts, [svc.accounts.blue.accountId]);

    // Snapshots: every account's by default, named by alias.
    await goTo(page, "Snapshots");
    const s = page.locator(`tr[data-snapshot-id="${made[0].id}"]`);
    await s.waitFor();
    assert.equal(await s.locator('td[data-label="Account"] .account-name').textContent(), "blue");
    await closeConsolePage(page);
  });

  test("members see no account switcher and no other account's volumes", async () => {
    const page = await signedIn("green");
    await goTo(page, "Volumes");
    await page.locator(`tr[data-volume-id="${svc.volumes.g1}"]`).waitFor();
    assert.equal(await page.getByLabel("Account", { exact: true }).count(), 0);
    assert.equal(await page.locator("tr[data-volume-id]").count(), 1);
    await closeConsolePage(page);
  });

  test("administrator: a restore shows the new volume's initialization-state until completed", async () => {
    const page = await signedIn("admin");
    const statusCalls = countEc2Requests(page, "DescribeVolumeStatus");
    await goTo(page, "Snapshots");
    const id = made[3].id;
    await page.getByRole("button", { name: `Actions for ${id}` }).click();
    await page.getByRole("menuitem", { name: `Restore ${id}` }).click();
    const dialog = page.getByRole("dialog", { name: `Restore ${id}` });
    await dialog.getByRole("button", { name: "Restore to a new volume" }).click();
    const volumeId = (await dialog.getByTestId("restored-volume").textContent()).trim();
    assert.match(volumeId, /^vol-[0-9a-f]{17}$/);
    await dialog.getByTestId("initialization-state").filter({ hasText: /^completed$/ }).waitFor();
    assert.ok(statusCalls.count >= 1, "the state shown comes from DescribeVolumeStatus");
    await screenshot(page, "restore-initialization-completed");
    // The server agrees.
    const status = await ec2OutsideBrowser(svc.endpoint, svc.accounts.admin, "DescribeVolumeStatus", { "VolumeId.1": volumeId });
    assert.match(status, /<name>initialization-state<\/name>\s*<status>completed<\/status>/);
    await dialog.getByRole("button", { name: "Close" }).click();
    await closeConsolePage(page);
  });

  test("restore requests: account switcher, newest first, search by reason", async () => {
    const file = async (reason, snap) => {
      const r = await signedJsonOutsideBrowser(svc.endpoint, svc.accounts.blue, "/api/v1/restore-requests", "POST", { snapshotId: snap, reason });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    };
    await file("Older: disk check", made[0].id);
    await sleep(1100);
    await file("Newer: Lost a TABLE", made[1].id);
    const page = await signedIn("admin");
    await goTo(page, "Restore requests");
    const rows = page.locator("tr[data-request-id]");
    await page.waitForFunction(() => document.querySelectorAll("tr[data-request-id]").length === 2);
    const reasons = await rows.locator('td[data-label="Reason"]').allTextContents();
    assert.deepEqual(reasons, ["Newer: Lost a TABLE", "Older: disk check"]);
    await page.getByLabel("Search restore requests").fill("lost a table");
    await page.waitForFunction(() => document.querySelectorAll("tr[data-request-id]").length === 1);
    assert.deepEqual(await rows.locator('td[data-label="Reason"]').allTextContents(), ["Newer: Lost a TABLE"]);
    await page.getByLabel("Search restore requests").fill("");
    await page.getByLabel("Account", { exact: true }).selectOption(svc.accounts.green.accountId);
    await page.getByText("No restore requests.").waitFor();
    await page.getByLabel("Account", { exact: true }).selectOption("all");
    await page.waitForFunction(() => document.querySelectorAll("tr[data-request-id]").length === 2);
    await screenshot(page, "restore-requests-admin-1280");
    await closeConsolePage(page);
  });
});
