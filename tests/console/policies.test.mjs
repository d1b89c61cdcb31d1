// Lifecycle policies in the console (issue 15, item 5): each schedule's next run, computed
// here independently from the current time; which snapshot the retention rule deletes next;
// create, edit (the description follows the time) and delete through the UI, checked with the
// DLM API signed outside the browser. A real snapvold serving console/dist.
// Run: node --test tests/console/policies.test.mjs   (environment: see harness.mjs)

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  cliSnapshot as cliSnapshotOf,
  policySnapshot,
  closeConsolePage,
  ec2OutsideBrowser,
  launchBrowser,
  scheduleClockArgs,
  screenshot,
  Service,
  signedInConsolePage,
  signedJsonOutsideBrowser,
  stopService,
  utcHhMm,
} from "./harness.mjs";

const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const HOUR = 3600_000;

let svc;
let browser;
const made = { retention: null, interval: null, intervalTime: null, defaultTime: null, snaps: [], runs: null, runTimes: [] };
// How long the runs test may wait for its two runs: both due ~20 s after set-up began.
const RUNS_WAIT_MS = 120_000;

/** Signed in as ops (in UTC unless `timezoneId` says otherwise), on the Lifecycle policies page. */
async function openPage({ viewport = LAPTOP, timezoneId = "UTC" } = {}) {
  const page = await signedInConsolePage(browser, svc, "ops", viewport, { timezoneId });
  await page.goto(`${svc.endpoint}/console/#/policies`);
  await page.getByRole("heading", { level: 1, name: "Lifecycle policies" }).waitFor();
  return page;
}

const dlm = (path, method = "GET", body = undefined) => signedJsonOutsideBrowser(svc.endpoint, svc.accounts.ops, path, method, body, "dlm");

async function createPolicyOutside(description, schedule, targetName) {
  const res = await dlm("/policies", "POST", {
    ExecutionRoleArn: `arn:aws:iam::${svc.accounts.ops.accountId}:role/policies-test`,
    Description: description,
    State: "ENABLED",
    PolicyDetails: {
      PolicyType: "EBS_SNAPSHOT_MANAGEMENT",
      ResourceTypes: ["VOLUME"],
      TargetTags: [{ Key: "Name", Value: targetName }],
      Schedules: [schedule],
    },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.PolicyId;
}

/** The next time after `now` of "every `hours` hours at hh:mm UTC": written here from DLM's
 *  description (times offset from hh:mm by whole periods, each day), not from the console. */
function expectedNextRun(now, hours, hhmm) {
  const [h, m] = hhmm.split(":").map(Number);
  const candidates = [];
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  for (const day of [today - 24 * HOUR, today, today + 24 * HOUR])
    for (let t = day + h * HOUR + m * 60_000 - 24 * HOUR; t < day + 48 * HOUR; t += hours * HOUR) candidates.push(t);
  return new Date(Math.min(...candidates.filter((t) => t > now.getTime())));
}

const cliSnapshot = (volume, ...tags) => cliSnapshotOf(svc, volume, ...tags);

const policyRow = (page, id) => page.locator(`tr[data-policy-id="${id}"]`);

describe("lifecycle policies: next run, retention preview, create, edit, delete", () => {
  before(async () => {
    // The default policy runs 5 hours away: no run during the tests, a known next run.
    made.defaultTime = utcHhMm(new Date(Date.now() + 5 * HOUR));
    // Schedules fall due early (scheduleClockArgs): two consecutive minutes, both due by ~20 s
    // from now on their clock.
    const soon = scheduleClockArgs(20, 2);
    svc = await new Service(["--default-time", made.defaultTime, ...soon.args]).start();
    svc.addAccount("ops");
    svc.addVolume("ops", "ret-vol", { seed: 31 });
    svc.addVolume("ops", "other-vol", { seed: 32 });
    svc.addVolume("ops", "run-vol", { seed: 33 });
    // Two schedules due at those two minutes, so the runs list has two runs to order.
    made.runTimes = soon.minutes.map(utcHhMm);
    // Every 6 hours, starting 2 hours 30 minutes from now (modulo 6 hours): not due during the tests.
    made.intervalTime = utcHhMm(new Date(Date.now() + 2.5 * HOUR));
    made.interval = await createPolicyOutside(
      "six-hourly",
      { Name: "six-hourly", CreateRule: { Interval: 6, IntervalUnit: "HOURS", Times: [made.intervalTime] }, RetainRule: { Count: 4 } },
      "other-vol",
    );
    // Keep 3 of "ret-vol": four snapshots of its schedule exist; after the next run adds one,
    // the two oldest go, except a locked one.
    made.retention = await createPolicyOutside(
      "keep-three",
      { Name: "keep-three", CreateRule: { Interval: 24, IntervalUnit: "HOURS", Times: [made.intervalTime] }, RetainRule: { Count: 3 } },
      "ret-vol",
    );
    const runsPolicy = await dlm("/policies", "POST", {
      ExecutionRoleArn: `arn:aws:iam::${svc.accounts.ops.accountId}:role/policies-test`,
      Description: "two runs",
      State: "ENABLED",
      PolicyDetails: {
        PolicyType: "EBS_SNAPSHOT_MANAGEMENT",
        ResourceTypes: ["VOLUME"],
        TargetTags: [{ Key: "Name", Value: "run-vol" }],
        Schedules: made.runTimes.map((t, i) => ({
          Name: `run-${i + 1}`,
          CreateRule: { Interval: 24, IntervalUnit: "HOURS", Times: [t] },
          RetainRule: { Count: 5 },
        })),
      },
    });
    assert.equal(runsPolicy.status, 200, JSON.stringify(runsPolicy.body));
    made.runs = runsPolicy.body.PolicyId;
    for (let i = 0; i < 4; i++) made.snaps.push(policySnapshot(svc, "ret-vol", made.retention, "keep-three"));
    // Not counted: another schedule's, a manual one, and one of a volume the policy does not target.
    policySnapshot(svc, "ret-vol", made.retention, "another");
    cliSnapshot("ret-vol", "Name=manual");
    policySnapshot(svc, "other-vol", made.retention, "keep-three");
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await stopService(svc);
  });

  test("next run of each policy, as the daemon schedules it, in local time under America/New_York", async () => {
    const page = await openPage({ timezoneId: "America/New_York" });
    const now = new Date();
    // The heading is up before the list has come back: wait for a row the list must hold.
    await policyRow(page, made.runs).waitFor();
    const listed = await page.locator("tr[data-policy-id]").evaluateAll((trs) => trs.map((tr) => tr.dataset.policyId));
    const defaultId = listed.find((id) => ![made.interval, made.retention, made.runs].includes(id));
    assert.ok(defaultId, JSON.stringify(listed));
    for (const [id, hours, hhmm] of [
      [made.interval, 6, made.intervalTime],
      [defaultId, 24, made.defaultTime],
    ]) {
      const cell = policyRow(page, id).locator("[data-next-run]");
      const expected = expectedNextRun(now, hours, hhmm);
      assert.equal(await cell.getAttribute("data-next-run"), expected.toISOString(), `next run of ${id}`);
      // Shown in New York time, with the UTC time on hover.
      const ny = new Intl.DateTimeFormat("en-CA", { timeZone: "America/New_York", hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" })
        .format(expected)
        .replace(",", "");
      const time = cell.locator("time");
      assert.match(await time.textContent(), new RegExp(`^${ny}:00 E[SD]T \\(in \\d+ hours?\\)$`));
      assert.match(await time.getAttribute("title"), new RegExp(`${expected.toISOString().slice(0, 10)} ${expected.toISOString().slice(11, 16)}:00 UTC`));
    }
    // The six-hourly policy runs at four times a day, every 6 hours from its time.
    assert.ok((await policyRow(page, made.interval).textContent()).includes(`every 6 hours at ${made.intervalTime} UTC`));
    await closeConsolePage(page);
  });

  test("the retention preview names the snapshots the next run deletes, not a locked one", async () => {
    // Lock the second oldest: retention skips a locked snapshot.
    await ec2OutsideBrowser(svc.endpoint, svc.accounts.ops, "LockSnapshot", {
      SnapshotId: made.snaps[1],
      LockMode: "governance",
      LockDuration: "1",
    });
    const page = await openPage();
    const preview = policyRow(page, made.retention).locator("[data-retention-preview]");
    await preview.waitFor();
    // Newest first: snaps[3], [2], [1], [0]; with the next run's new snapshot, keep 3 leaves
    // [3] and [2]: [1] (locked, stays) and [0] go.
    assert.equal(await preview.getAttribute("data-retention-preview"), made.snaps[0]);
    assert.match(await preview.textContent(), new RegExp(`${made.snaps[1]} stays: locked \\(governance\\)`));
    assert.equal(await preview.getByRole("link", { name: made.snaps[0] }).getAttribute("href"), `#/snapshot/${made.snaps[0]}`);
    // The six-hourly policy (keep 4, one snapshot of its schedule on its volume) deletes nothing.
    assert.match(await policyRow(page, made.interval).locator("[data-retention-preview]").textContent(), /deletes no snapshot/);
    await screenshot(page, "policies-1280");
    await closeConsolePage(page);
    const phone = await openPage({ viewport: PHONE });
    await policyRow(phone, made.retention).locator("[data-retention-preview]").waitFor();
    await screenshot(phone, "policies-390");
    await closeConsolePage(phone);
  });

  test("create a policy in the UI: fields checked inline, nothing sent while wrong; the server has it", async () => {
    const page = await openPage();
    let posts = 0;
    page.on("request", (r) => {
      if (r.method() === "POST" && new URL(r.url()).pathname === "/policies") posts += 1;
    });
    await page.getByRole("button", { name: "Create policy" }).click();
    const dialog = page.getByRole("dialog", { name: "Create lifecycle policy" });
    await dialog.waitFor();
    // The name follows the time while it is not typed over.
    await dialog.getByLabel("Daily time (UTC)").fill("04:15");
    assert.equal(await dialog.getByLabel("Description").inputValue(), "daily-0415-utc");
    assert.equal(await dialog.getByLabel("Schedule name").inputValue(), "daily-0415-utc");
    // Wrong values, each flagged beside its field; the dialog sends nothing.
    await dialog.getByLabel("Description").fill("db backups!");
    await dialog.getByLabel("Snapshots to keep").fill("1001");
    await dialog.getByRole("button", { name: "Create policy" }).click();
    await dialog.getByTestId("not-sent").waitFor();
    const errorOf = async (label) => {
      const input = dialog.getByLabel(label, { exact: true });
      assert.equal(await input.getAttribute("aria-invalid"), "true", label);
      return dialog.locator(`[id="${await input.getAttribute("id")}-error"]`).textContent();
    };
    assert.match(await errorOf("Description"), /Only letters, digits, spaces, _ and - are allowed \(not !\)/);
    assert.match(await errorOf("Snapshots to keep"), /1001 is outside 1 to 1000/);
    assert.match(await dialog.getByRole("alert").filter({ hasText: "target tag" }).textContent(), /Add at least one target tag/);
    await dialog.getByLabel("Daily time (UTC)").fill("24:00");
    assert.match(await errorOf("Daily time (UTC)"), /hh:mm/);
    await screenshot(page, "policy-create-refused");
    assert.equal(posts, 0, "nothing sent while a field is wrong");
    // The limits accepted whole: 1000 snapshots, a 500-character description.
    await dialog.getByLabel("Daily time (UTC)").fill("04:15");
    await dialog.getByLabel("Snapshots to keep").fill("1000");
    await dialog.getByLabel("Description").fill("d".repeat(500));
    await dialog.getByRole("button", { name: "Add Tag" }).click();
    await dialog.getByLabel("Tag 1 key").fill("Name");
    await dialog.getByLabel("Tag 1 value").fill("ret-vol");
    await dialog.getByRole("button", { name: "Create policy" }).click();
    await dialog.waitFor({ state: "detached" });
    const notice = await page.getByTestId("policies-notice").textContent();
    const id = /policy-[0-9a-f]{17}/.exec(notice)?.[0];
    assert.ok(id, notice);
    const stored = (await dlm(`/policies/${id}/`)).body.Policy;
    assert.equal(stored.Description, "d".repeat(500));
    assert.equal(stored.State, "ENABLED");
    assert.deepEqual(stored.PolicyDetails.TargetTags, [{ Key: "Name", Value: "ret-vol" }]);
    assert.equal(stored.PolicyDetails.Schedules[0].Name, "daily-0415-utc");
    assert.deepEqual(stored.PolicyDetails.Schedules[0].CreateRule, { Interval: 24, IntervalUnit: "HOURS", Times: ["04:15"] });
    assert.deepEqual(stored.PolicyDetails.Schedules[0].RetainRule, { Count: 1000 });
    await policyRow(page, id).waitFor();
    await closeConsolePage(page);
  });

  test("edit a policy: the description follows the new time, the schedule keeps its name and says why", async () => {
    const id = await createPolicyOutside(
      "daily-0200-utc",
      { Name: "daily-0200-utc", CreateRule: { Interval: 24, IntervalUnit: "HOURS", Times: ["02:00"] }, RetainRule: { Count: 7 } },
      "other-vol",
    );
    const page = await openPage();
    await policyRow(page, id).getByRole("button", { name: `Edit ${id}` }).click();
    const dialog = page.getByRole("dialog", { name: `Edit ${id}` });
    await dialog.getByLabel("Daily time (UTC)").fill("13:57");
    assert.equal(await dialog.getByLabel("Description").inputValue(), "daily-1357-utc");
    assert.match(await dialog.getByTestId("name-follows").textContent(), /“daily-0200-utc” becomes “daily-1357-utc”/);
    assert.match(await dialog.getByTestId("schedule-name-kept").textContent(), /keeps its name “daily-0200-utc”/);
    await dialog.getByLabel("Snapshots to keep").fill("5");
    await screenshot(page, "policy-edit");
    await dialog.getByRole("button", { name: "Save policy" }).click();
    await dialog.waitFor({ state: "detached" });
    const stored = (await dlm(`/policies/${id}/`)).body.Policy;
    assert.equal(stored.Description, "daily-1357-utc");
    assert.deepEqual(stored.PolicyDetails.Schedules[0].CreateRule.Times, ["13:57"]);
    assert.equal(stored.PolicyDetails.Schedules[0].RetainRule.Count, 5);
    assert.equal(stored.PolicyDetails.Schedules[0].Name, "daily-0200-utc");
    assert.deepEqual(stored.PolicyDetails.TargetTags, [{ Key: "Name", Value: "other-vol" }], "targets kept");
    // The list shows the new time and when it runs next.
    const row = policyRow(page, id);
    await row.filter({ hasText: "at 13:57 UTC" }).filter({ hasText: "daily-1357-utc" }).waitFor();
    assert.equal(await row.locator("[data-next-run]").getAttribute("data-next-run"), expectedNextRun(new Date(), 24, "13:57").toISOString());
    await closeConsolePage(page);
  });

  test("delete a policy after confirmation; Cancel deletes nothing", async () => {
    const id = await createPolicyOutside(
      "to-delete",
      { Name: "to-delete", CreateRule: { Interval: 24, IntervalUnit: "HOURS", Times: ["03:00"] }, RetainRule: { Count: 1 } },
      "other-vol",
    );
    const page = await openPage();
    await policyRow(page, id).getByRole("button", { name: `Delete ${id}` }).click();
    const dialog = page.getByRole("dialog", { name: `Delete ${id}?` });
    await dialog.waitFor();
    await screenshot(page, "policy-delete-confirm");
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "detached" });
    assert.equal((await dlm(`/policies/${id}/`)).status, 200, "still there after Cancel");
    await policyRow(page, id).getByRole("button", { name: `Delete ${id}` }).click();
    await dialog.getByRole("button", { name: "Delete policy" }).click();
    await dialog.waitFor({ state: "detached" });
    await policyRow(page, id).waitFor({ state: "detached" });
    const gone = await dlm(`/policies/${id}/`);
    assert.equal(gone.status, 404);
    assert.match(JSON.stringify(gone.body), /ResourceNotFoundException/);
    await closeConsolePage(page);
  });

  test("runs: newest first, and sortable by their columns", async () => {
    const page = await openPage();
    await policyRow(page, made.runs).getByRole("button", { name: `Runs of ${made.runs}` }).click();
    const table = page.getByRole("table", { name: `Runs of ${made.runs}` });
    await table.locator('tr[data-run-state="succeeded"]').nth(1).waitFor({ timeout: RUNS_WAIT_MS });
    const schedules = () => table.locator("tbody tr").evaluateAll((trs) => trs.map((tr) => tr.querySelector('td[data-label="Schedule"]').textContent));
    const scheduled = () => table.locator("tbody tr").evaluateAll((trs) => trs.map((tr) => tr.dataset.scheduled));
    // Newest first by default: run-2 (the later time) above run-1.
    assert.deepEqual(await schedules(), ["run-2", "run-1"]);
    const times = await scheduled();
    assert.ok(times[0] > times[1], JSON.stringify(times));
    const header = table.getByRole("columnheader", { name: /Scheduled/ });
    assert.equal(await header.getAttribute("aria-sort"), "descending");
    await header.getByRole("button").click();
    assert.equal(await header.getAttribute("aria-sort"), "ascending");
    assert.deepEqual(await schedules(), ["run-1", "run-2"]);
    // By schedule name, A to Z and back.
    const byName = table.getByRole("columnheader", { name: /Schedule$/ });
    await byName.getByRole("button").click();
    assert.equal(await byName.getAttribute("aria-sort"), "ascending");
    assert.deepEqual(await schedules(), ["run-1", "run-2"]);
    await byName.getByRole("button").click();
    assert.deepEqual(await schedules(), ["run-2", "run-1"]);
    // The search box: a part of a schedule name, any case; then text no run has.
    const search = page.getByRole("searchbox", { name: "Search runs" });
    await search.fill("RUN-2");
    assert.deepEqual(await schedules(), ["run-2"]);
    assert.equal(await page.getByTestId("search-count").textContent(), "1 of 2 match “RUN-2”");
    await search.fill("no-such-run");
    await page.getByText("No run matches “no-such-run”.").waitFor();
    assert.equal(await table.count(), 0);
    await search.fill("");
    assert.deepEqual(await schedules(), ["run-2", "run-1"]);
    await screenshot(page, "policy-runs");
    await closeConsolePage(page);
  });
});
