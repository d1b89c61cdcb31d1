// The snapshot and volume details pages and times as people read them (issue 15, items 4
// and 5): pages reached by URL and kept on reload, ids that are malformed or unknown, tags
// edited in place and read back with EC2 requests signed outside the browser, local time under
// an emulated time zone and the UTC setting. A real snapvold serving console/dist.
// Run: node --test tests/console/details.test.mjs   (environment: see harness.mjs)

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  cliSnapshot as cliSnapshotOf,
  closeConsolePage,
  defaultTimeFromNow,
  describeSnapshotsOutsideBrowser,
  ec2OutsideBrowser,
  launchBrowser,
  openConsolePage,
  screenshot,
  Service,
  signedInConsolePage,
  signedJsonOutsideBrowser,
  stopService,
} from "./harness.mjs";

const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const NEW_YORK = "America/New_York";

let svc;
let browser;
const made = { bigSnapshot: null, smallSnapshots: [] };

/** Signed in as `alias`, in UTC unless `timezoneId` says otherwise. */
function signedInPage(alias, { viewport = LAPTOP, timezoneId = "UTC", hash = "" } = {}) {
  return signedInConsolePage(browser, svc, alias, viewport, { timezoneId, hash });
}

/** Goes to `hash` by typing it in the address bar (a navigation, not a click). */
async function visit(page, hash) {
  await page.goto(`${svc.endpoint}/console/${hash}`);
}

const cliSnapshot = (volume, ...tags) => cliSnapshotOf(svc, volume, ...tags);

/** The text of the details list's value for `field` (data-field). */
async function field(page, name) {
  return (await page.locator(`[data-field="${name}"] dd`).textContent()).replace(/\s+/g, " ").trim();
}

/** startTime of a snapshot as DescribeSnapshots (outside the browser) says. */
async function startTimeOf(id) {
  const xml = await ec2OutsideBrowser(svc.endpoint, svc.accounts.blue, "DescribeSnapshots", { "SnapshotId.1": id });
  return /<startTime>([^<]+)<\/startTime>/.exec(xml)[1];
}

/** "2026-12-03 17:22:51" of `iso` in `timeZone`, computed by node (not by the console). */
function wallClock(iso, timeZone) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-CA", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    })
      .formatToParts(new Date(iso))
      .map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`;
}

describe("details pages and times", () => {
  before(async () => {
    // The default lifecycle policy runs 12 hours away, so only these tests make snapshots.
    svc = await new Service(["--default-time", defaultTimeFromNow()]).start();
    svc.addAccount("blue");
    svc.addAccount("green");
    svc.addInstance("blue", "app-1");
    svc.addVolume("blue", "big", { seed: 21, size: "256M" });
    svc.addVolume("blue", "small", { seed: 22, instance: "app-1", device: "/dev/xvdb" });
    svc.addVolume("green", "theirs", { seed: 23 });
    made.bigSnapshot = cliSnapshot("big", "Name=before-upgrade", "Owner=blue");
    for (let i = 0; i < 3; i++) made.smallSnapshots.push(cliSnapshot("small", `Name=small-${i}`));
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await stopService(svc);
  });

  test("the Accounts page shows each team's snapshot storage as GET /api/v1/usage counts it", async () => {
    let usage;
    for (let deadline = Date.now() + 30_000; ; ) {
      usage = await signedJsonOutsideBrowser(svc.endpoint, svc.accounts.admin, "/api/v1/usage");
      assert.equal(usage.status, 200, JSON.stringify(usage.body));
      if (usage.body.pendingChanges === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(usage.body.pendingChanges, 0, JSON.stringify(usage.body));
    const byAlias = Object.fromEntries(usage.body.accounts.map((a) => [a.alias, a]));
    assert.equal(byAlias.blue.snapshots, 4);
    assert.ok(byAlias.blue.exclusiveBytes > 0 && byAlias.blue.sharedBytes === 0, JSON.stringify(byAlias.blue));
    assert.equal(byAlias.green.snapshots, 0);
    assert.equal(usage.body.storedBytes, byAlias.blue.exclusiveBytes);
    // A member asks for its own numbers only.
    const mine = await signedJsonOutsideBrowser(svc.endpoint, svc.accounts.blue, "/api/v1/usage");
    assert.deepEqual(mine.body.accounts, [byAlias.blue]);

    const page = await signedInPage("admin");
    await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Accounts and keys" }).click();
    const cell = page.locator(`tr[data-account-id="${svc.accounts.blue.accountId}"] [data-testid="account-usage"]`);
    await cell.getByText("4 snapshots").waitFor();
    const text = (await cell.textContent()).replace(/\s+/g, " ");
    assert.match(text, new RegExp(`\\(${byAlias.blue.exclusiveBytes.toLocaleString("en-US")} bytes\\) own`));
    assert.match(await page.getByTestId("usage-summary").textContent(), new RegExp(`${usage.body.storedBytes.toLocaleString("en-US")} bytes`));
    await closeConsolePage(page);
  });

  test("a snapshot's details by URL, kept on reload: the 256 MiB volume's exact size, bytes stored, parent, completion", async () => {
    const id = made.bigSnapshot;
    // EC2's DescribeSnapshots sends whole GiB, rounded up; snapvol's JSON API the exact bytes.
    const xml = await ec2OutsideBrowser(svc.endpoint, svc.accounts.blue, "DescribeSnapshots", { "SnapshotId.1": id });
    assert.match(xml, /<volumeSize>1<\/volumeSize>/);
    // Usage is counted in the background within seconds of completion.
    let details;
    for (let deadline = Date.now() + 30_000; ; ) {
      details = await signedJsonOutsideBrowser(svc.endpoint, svc.accounts.blue, `/api/v1/snapshots/${id}`);
      assert.equal(details.status, 200, JSON.stringify(details.body));
      if (details.body.snapshot.usageStatus !== "pending" || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const d = details.body.snapshot;
    assert.equal(d.usageStatus, "counted", JSON.stringify(d));
    // The volume holds data in part of its 256 MiB; nothing else holds this volume's blocks.
    assert.ok(d.fullSnapshotSizeBytes > 0 && d.fullSnapshotSizeBytes <= 256 * 1024 * 1024, JSON.stringify(d));
    assert.ok(d.uniqueBytes > 0, JSON.stringify(d));
    assert.equal(d.volumeSizeBytes, 256 * 1024 * 1024);
    assert.ok(d.storedBytes > 0 && d.completionTime, JSON.stringify(d));

    const page = await signedInPage("blue");
    await visit(page, `#/snapshot/${id}`);
    const heading = page.getByRole("heading", { level: 1, name: `Snapshot ${id}` });
    await heading.waitFor();
    await page.locator('[data-field="state"]').getByText("completed").waitFor();
    await page.locator('[data-field="size"]').getByText("256 MiB").waitFor();
    assert.equal(await field(page, "size"), "256 MiB (268,435,456 bytes)");
    assert.match(await field(page, "stored"), new RegExp(`\\(${d.storedBytes.toLocaleString("en-US")} bytes\\)`));
    assert.match(await field(page, "parent"), /none: a full snapshot/);
    const completed = page.locator('[data-field="completed"] time');
    assert.equal(new Date(await completed.getAttribute("datetime")).getTime(), new Date(d.completionTime).getTime());
    await page.locator('[data-field="unique"]').getByText(/bytes\)/).waitFor();
    assert.match(await field(page, "unique"), new RegExp(`\\(${d.uniqueBytes.toLocaleString("en-US")} bytes\\)`));
    assert.match(await field(page, "full"), new RegExp(`\\(${d.fullSnapshotSizeBytes.toLocaleString("en-US")} bytes\\)`));
    assert.equal(await page.locator('[data-field="volume"] a').getAttribute("href"), `#/volume/${svc.volumes.big}`);
    // How it was cut, as the catalog recorded it (`snapvol snapshot show`): EC2's answer carries
    // it as snapvol's members, not as tags, and the page shows both, a torn copy as a warning.
    const cut = Object.fromEntries(
      JSON.parse(svc.cli("-o", "json", "snapshot", "show", "--snapshot-id", id)).Tags.map((t) => [t.Key, t.Value]),
    );
    assert.ok(cut["aws:snapvol:consistency"] && cut["aws:snapvol:changed-blocks"], JSON.stringify(cut));
    assert.equal(await page.locator('[data-field="cut"] dd > span').first().textContent(), cut["aws:snapvol:consistency"]);
    assert.equal(await page.locator('[data-field="cut"] .sub').textContent(), `changed blocks: ${cut["aws:snapvol:changed-blocks"]}`);
    assert.equal(
      await page.locator('[data-field="cut"] .warning').count(),
      cut["aws:snapvol:consistency"].startsWith("crash-unsafe") ? 1 : 0,
    );
    // The lock is looked up after the page shows ("Loading…" until then): wait for an answer.
    await page.locator('[data-field="lock"]').getByText(/not locked|not known|locked/).waitFor();
    assert.match(await field(page, "lock"), /not locked/);
    assert.match(await page.getByTestId("tags").textContent(), /Name=before-upgrade/);
    // The navigation stays, with Snapshots marked as where this page belongs.
    const nav = page.getByRole("navigation", { name: "Pages" });
    assert.equal(await nav.getByRole("link", { name: "Snapshots" }).getAttribute("aria-current"), "page");

    await page.reload();
    await heading.waitFor();
    await page.locator('[data-field="size"]').getByText("256 MiB").waitFor();
    assert.match(await page.title(), new RegExp(id));
    await closeConsolePage(page);
  });

  test("malformed, empty and unknown ids are said to be so, inside the console", async () => {
    const page = await signedInPage("blue");
    const cases = [
      ["#/snapshot/snap-xyz", /“snap-xyz” is not a snapshot id/],
      ["#/snapshot/", /names no snapshot/],
      ["#/volume", /names no volume/],
      ["#/snapshot/snap-00000000000000000", /There is no snapshot snap-00000000000000000 that your account can see/],
      ["#/volume/vol-12", /“vol-12” is not a volume id/],
      ["#/volume/vol-00000000000000000", /There is no volume vol-00000000000000000 that your account can see/],
      // Another account's volume is not shown to this one.
      [`#/volume/${svc.volumes.theirs}`, /There is no volume .* that your account can see/],
    ];
    for (const [hash, message] of cases) {
      await visit(page, hash);
      const problem = page.getByTestId("details-problem");
      await problem.waitFor();
      assert.match(await problem.textContent(), message, hash);
      assert.equal(await page.getByRole("heading", { level: 1, name: "Not found" }).count(), 0, `${hash}: not the whole page`);
      await page.getByRole("navigation", { name: "Pages" }).waitFor();
    }
    await closeConsolePage(page);
  });

  test("an address typed the moment the console appears after sign-in is followed, not missed", async () => {
    // CI once waited 60 s for a details page that never came: the shell began following the
    // address only after it had been drawn, so a change made just then left the Volumes page
    // on screen. Here the change is made as the signed-in shell's first element appears.
    const page = await openConsolePage(browser, svc.endpoint, LAPTOP);
    await page.evaluate(() => {
      const seen = new MutationObserver(() => {
        if (!document.querySelector('[data-testid="whoami"]')) return;
        seen.disconnect();
        location.hash = "#/volume/vol-12";
      });
      seen.observe(document.body, { childList: true, subtree: true });
    });
    await page.getByLabel("Access key ID").fill(svc.accounts.blue.accessKeyId);
    await page.getByLabel("Secret access key").fill(svc.accounts.blue.secretAccessKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    const problem = page.getByTestId("details-problem");
    await problem.waitFor({ timeout: 10_000 });
    assert.match(await problem.textContent(), /“vol-12” is not a volume id/);
    await closeConsolePage(page);
  });

  test("an administrator sees another account's snapshot; its lock is said to be unknown, not 'not locked'", async () => {
    const page = await signedInPage("admin");
    await visit(page, `#/snapshot/${made.bigSnapshot}`);
    await page.getByRole("heading", { level: 1, name: `Snapshot ${made.bigSnapshot}` }).waitFor();
    await page.locator('[data-field="owner"]').getByText("blue").waitFor();
    await page.locator('[data-field="lock"]').getByText(/not locked|not known|locked/).waitFor();
    assert.match(await field(page, "lock"), /not known: DescribeLockedSnapshots lists only your own account’s locks/);
    await closeConsolePage(page);
  });

  test("a volume's details: size, attachment, its snapshots newest first, each linked", async () => {
    const page = await signedInPage("blue");
    await visit(page, `#/volume/${svc.volumes.small}`);
    await page.getByRole("heading", { level: 1, name: `Volume ${svc.volumes.small}` }).waitFor();
    await page.locator('[data-field="size"]').getByText("16 MiB").waitFor();
    assert.match(await field(page, "size"), /^16 MiB \(16,777,216 bytes\) ?EC2’s API reports it as 1 GiB/);
    // The instance's Name tag is looked up after the page shows: wait for it.
    await page.locator('[data-field="attachment"]').getByText("(app-1)").waitFor();
    const attachment = await field(page, "attachment");
    assert.match(attachment, new RegExp(`${svc.instances["app-1"]} \\(app-1\\) as /dev/xvdb`));
    const table = page.getByRole("table", { name: `Snapshots of ${svc.volumes.small}` });
    await table.waitFor();
    const ids = await table.locator("tr[data-snapshot-id]").evaluateAll((trs) => trs.map((tr) => tr.dataset.snapshotId));
    assert.deepEqual(ids, [...made.smallSnapshots].reverse(), "newest first");
    // Follow the newest one to its page, and back to the volume from there.
    await table.getByRole("link", { name: made.smallSnapshots[2] }).click();
    await page.getByRole("heading", { level: 1, name: `Snapshot ${made.smallSnapshots[2]}` }).waitFor();
    assert.match(page.url(), new RegExp(`#/snapshot/${made.smallSnapshots[2]}$`));
    // An incremental snapshot names its parent (the one before it), linked.
    const parent = page.locator('[data-field="parent"] a');
    await parent.waitFor();
    assert.equal(await parent.getAttribute("href"), `#/snapshot/${made.smallSnapshots[1]}`);
    await page.locator('[data-field="volume"] a').click();
    await page.getByRole("heading", { level: 1, name: `Volume ${svc.volumes.small}` }).waitFor();
    await closeConsolePage(page);
  });

  test("a snapshot's restore requests, and the volume restored from it with its initialization", async () => {
    const id = made.smallSnapshots[1];
    const filed = await signedJsonOutsideBrowser(svc.endpoint, svc.accounts.blue, "/api/v1/restore-requests", "POST", {
      snapshotId: id,
      reason: "need last night's data",
    });
    assert.equal(filed.status, 200, JSON.stringify(filed.body));
    const requestId = filed.body.restoreRequest.restoreRequestId;
    const approved = await signedJsonOutsideBrowser(svc.endpoint, svc.accounts.admin, `/api/v1/restore-requests/${requestId}/approve`, "POST", {
      reason: "ok",
    });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    const volumeId = approved.body.restoreRequest.volumeId;
    assert.match(volumeId ?? "", /^vol-/, JSON.stringify(approved.body));

    const page = await signedInPage("blue");
    await visit(page, `#/snapshot/${id}`);
    const request = page.locator(`tr[data-restore-request-id="${requestId}"]`);
    await request.waitFor();
    assert.match(await request.textContent(), /need last night's data/);
    await request.getByRole("link", { name: volumeId }).click();
    await page.getByRole("heading", { level: 1, name: `Volume ${volumeId}` }).waitFor();
    assert.equal(await page.locator('[data-field="restored-from"] a').getAttribute("href"), `#/snapshot/${id}`);
    // Initialization as DescribeVolumeStatus says, followed until it completes.
    await page.locator('[data-field="initialization"]').getByText("completed").waitFor();
    const status = await ec2OutsideBrowser(svc.endpoint, svc.accounts.blue, "DescribeVolumeStatus", { "VolumeId.1": volumeId });
    assert.match(status, /<name>initialization-state<\/name>\s*<status>completed<\/status>/);
    await closeConsolePage(page);
  });

  test("tags edited in place: the server holds exactly what was saved; a removed tag deletes only that key=value", async () => {
    const id = made.smallSnapshots[0];
    const blue = svc.accounts.blue;
    await ec2OutsideBrowser(svc.endpoint, blue, "CreateTags", {
      "ResourceId.1": id,
      "Tag.1.Key": "Owner",
      "Tag.1.Value": "blue",
      "Tag.2.Key": "Stage",
      "Tag.2.Value": "old",
    });
    const page = await signedInPage("blue");
    await visit(page, `#/snapshot/${id}`);
    await page.getByRole("button", { name: "Edit tags" }).click();
    // Rows in key order: Name, Owner, Stage.
    assert.equal(await page.getByLabel("Tag 1 key").inputValue(), "Name");
    assert.equal(await page.getByLabel("Tag 2 key").inputValue(), "Owner");
    assert.equal(await page.getByLabel("Tag 3 key").inputValue(), "Stage");
    // While the form is open, someone else changes Owner outside the browser.
    await ec2OutsideBrowser(svc.endpoint, blue, "CreateTags", { "ResourceId.1": id, "Tag.1.Key": "Owner", "Tag.1.Value": "green" });
    // Remove Owner (=blue as loaded) and Stage, change Name, add Env with an empty value.
    await page.getByRole("button", { name: "Remove tag 3" }).click();
    await page.getByRole("button", { name: "Remove tag 2" }).click();
    await page.getByLabel("Tag 1 value").fill("small-renamed");
    await page.getByRole("button", { name: "Add Tag" }).click();
    await page.getByLabel("Tag 2 key").fill("Env");
    // A reserved key is refused on its row before anything is sent.
    await page.getByRole("button", { name: "Add Tag" }).click();
    await page.getByLabel("Tag 3 key").fill("aws:snapvol:mine");
    await page.getByRole("button", { name: "Save tags" }).click();
    await page.getByTestId("not-sent").waitFor();
    assert.equal(await page.getByLabel("Tag 3 key").getAttribute("aria-invalid"), "true");
    await page.getByRole("button", { name: "Remove tag 3" }).click();
    await screenshot(page, "snapshot-tags-editing");
    await page.getByRole("button", { name: "Save tags" }).click();
    await page.getByText("Tags saved; shown as the server now holds them.").waitFor();

    const [snap] = await describeSnapshotsOutsideBrowser(page, svc.endpoint, blue, { "SnapshotId.1": id });
    assert.deepEqual(snap.tags, [
      { key: "Env", value: "" },
      { key: "Name", value: "small-renamed" },
      // Owner=blue was removed; Owner=green, set meanwhile, is not what was removed and stays.
      { key: "Owner", value: "green" },
    ]);
    // The page shows what the server holds now.
    await page.getByTestId("tags").getByText("green").waitFor();
    assert.doesNotMatch(await page.getByTestId("tags").textContent(), /Stage/);
    await closeConsolePage(page);
  });

  test("a volume's tags edited in place", async () => {
    const page = await signedInPage("blue");
    await visit(page, `#/volume/${svc.volumes.big}`);
    // Where it lives (docs/api.md, "Where a volume lives"): shown as set by snapvol, not editable.
    assert.match(await page.locator(".system-tags").textContent(), /aws:snapvol:host=/);
    await page.getByRole("button", { name: "Edit tags" }).click();
    const n = await page.locator(".tag-row").count();
    await page.getByRole("button", { name: "Add Tag" }).click();
    await page.getByLabel(`Tag ${n + 1} key`).fill("Team");
    await page.getByLabel(`Tag ${n + 1} value`).fill("storage");
    await page.getByRole("button", { name: "Save tags" }).click();
    await page.getByText("Tags saved; shown as the server now holds them.").waitFor();
    const xml = await ec2OutsideBrowser(svc.endpoint, svc.accounts.blue, "DescribeVolumes", { "VolumeId.1": svc.volumes.big });
    assert.match(xml, /<key>Team<\/key>\s*<value>storage<\/value>/);
    await closeConsolePage(page);
  });

  test("times in local time under America/New_York with UTC on hover; the UTC setting is kept across reloads and pages", async () => {
    const id = made.bigSnapshot;
    const iso = await startTimeOf(id);
    const page = await signedInPage("blue", { timezoneId: NEW_YORK });
    await visit(page, `#/snapshot/${id}`);
    const started = page.locator('[data-field="started"] time');
    await started.waitFor();
    const local = wallClock(iso, NEW_YORK);
    const utc = wallClock(iso, "UTC");
    assert.notEqual(local.slice(11, 13), utc.slice(11, 13), "New York's hour differs from UTC's");
    const text = await started.textContent();
    assert.match(text, new RegExp(`^${local} E[SD]T \\((just now|\\d+ minutes? ago)\\)$`), text);
    assert.equal(await started.getAttribute("title"), `${utc} UTC`);
    assert.equal(await started.getAttribute("datetime"), new Date(iso).toISOString());

    // The setting, in the header of every page.
    const setting = page.getByLabel("Times in");
    await setting.selectOption("utc");
    await page.locator('[data-field="started"] time[data-zone="utc"]').waitFor();
    assert.match(await started.textContent(), new RegExp(`^${utc} UTC `));
    assert.match(await started.getAttribute("title"), new RegExp(`^${local} E[SD]T$`));
    await page.reload();
    await page.locator('[data-field="started"] time[data-zone="utc"]').waitFor();
    assert.equal(await page.getByLabel("Times in").inputValue(), "utc");
    // Other pages follow the setting: the Snapshots list's times are in UTC too.
    await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Snapshots" }).click();
    const row = page.locator(`tr[data-snapshot-id="${id}"] time`);
    await row.waitFor();
    assert.equal(await row.getAttribute("data-zone"), "utc");
    // Back to local time.
    await page.getByLabel("Times in").selectOption("local");
    await page.locator(`tr[data-snapshot-id="${id}"] time[data-zone="local"]`).waitFor();
    await closeConsolePage(page);
  });

  test("screenshots of the details pages at 1280×800 and 390 px wide, axe clean", async () => {
    for (const [viewport, label] of [[LAPTOP, "1280"], [PHONE, "390"]]) {
      const page = await signedInPage("blue", { viewport });
      await visit(page, `#/snapshot/${made.bigSnapshot}`);
      await page.locator('[data-field="lock"]').getByText("not locked").waitFor();
      await screenshot(page, `snapshot-details-${label}`);
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= viewport.width, `snapshot details ${width}px wide at ${viewport.width}`);
      await visit(page, `#/volume/${svc.volumes.small}`);
      await page.getByRole("table", { name: `Snapshots of ${svc.volumes.small}` }).waitFor();
      await screenshot(page, `volume-details-${label}`);
      await closeConsolePage(page);
    }
  });
});
