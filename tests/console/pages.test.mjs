// Every page of the console, as a member and as an administrator, at 1,280×800 and at 390 px
// wide, in the light and the dark theme: a screenshot of each (kept as a CI artifact), axe
// clean (WCAG 2 A/AA), and no horizontal scroll of the page (issue 15's acceptance). The pages
// are found, not listed: every link of the navigation, plus one page of each kind of details
// link (#/kind/ID) found on them, so pages added later are visited too.
// Run: node --test tests/console/pages.test.mjs   (environment: see harness.mjs)

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  closeConsolePage,
  defaultTimeFromNow,
  ec2OutsideBrowser,
  launchBrowser,
  openConsolePage,
  screenshot,
  Service,
  signedJsonOutsideBrowser,
  signInConsole,
  stopService,
  WAIT_MS,
} from "./harness.mjs";

const VIEWPORTS = [
  { name: "1280", viewport: { width: 1280, height: 800 } },
  { name: "390", viewport: { width: 390, height: 844 } },
];
const SCHEMES = ["light", "dark"];

let svc;
let browser;

/** Waits until the page shows its heading and has stopped loading (no "Loading…" status and
 *  no request in flight for a moment). */
async function settled(page) {
  await page.locator("main h1").first().waitFor();
  await page.waitForFunction(
    () => ![...document.querySelectorAll('[role="status"]')].some((e) => /^(Loading|Signing in)/.test(e.textContent.trim())),
    undefined,
    { timeout: WAIT_MS },
  );
  await page.waitForLoadState("networkidle", { timeout: 5000 }).catch(() => {});
}

/** How far the page scrolls sideways (0: not at all). */
function sidewaysScroll(page) {
  return page.evaluate(() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - document.documentElement.clientWidth);
}

/** The route part of a hash link: "#/snapshot/snap-1?x" → "snapshot/snap-1". */
function routeOf(href) {
  return href.replace(/^#\/?/, "").split("?")[0];
}

/** Visits every page `alias` can reach, at `viewport` in `scheme`; returns the pages seen. */
async function visitAll(alias, viewport, scheme, sizeName) {
  const page = await openConsolePage(browser, svc.endpoint, viewport);
  await page.emulateMedia({ colorScheme: scheme });
  await signInConsole(page, svc.accounts[alias]);
  const nav = page.getByRole("navigation", { name: "Pages" });
  const navLinks = await nav.getByRole("link").evaluateAll((as) => as.map((a) => ({ href: a.getAttribute("href"), name: a.textContent.trim() })));
  assert.ok(navLinks.length >= 4, `the navigation has links: ${JSON.stringify(navLinks)}`);
  const navRoutes = new Set(navLinks.map((l) => routeOf(l.href)));
  const details = new Map(); // kind → href: one details page of each kind
  const seen = [];
  const check = async (label) => {
    await settled(page);
    const slug = `${alias}-${sizeName}-${scheme}-${label}`.replace(/[^A-Za-z0-9-]+/g, "-").toLowerCase();
    await screenshot(page, slug); // throws on an axe violation
    const extra = await sidewaysScroll(page);
    assert.ok(extra <= 0, `"${label}" as ${alias} at ${viewport.width} px (${scheme}) scrolls ${extra} px sideways`);
    seen.push(label);
  };
  for (const link of navLinks) {
    await nav.getByRole("link", { name: link.name, exact: true }).click();
    await page.waitForFunction((h) => location.hash === h, link.href);
    await check(link.name);
    const hrefs = await page.locator('main a[href^="#/"]').evaluateAll((as) => as.map((a) => a.getAttribute("href")));
    for (const href of hrefs) {
      const route = routeOf(href);
      if (navRoutes.has(route)) continue; // the same page, filtered
      const kind = route.split("/")[0];
      if (!details.has(kind)) details.set(kind, href);
    }
  }
  for (const [kind, href] of details) {
    await page.evaluate((h) => (location.hash = h), href);
    await check(`details-${kind}`);
  }
  await closeConsolePage(page);
  return seen;
}

describe("every page, both roles, both widths, both themes", () => {
  before(async () => {
    svc = await new Service(["--default-time", defaultTimeFromNow()]).start();
    svc.addAccount("team-1");
    svc.addInstance("team-1", "app-1");
    svc.addVolume("team-1", "web1", { seed: 2 });
    svc.addVolume("team-1", "app-data", { seed: 4, instance: "app-1", device: "/dev/xvdb" });
    // Something on every list: a completed snapshot with tags (one long value), a restore request.
    const xml = await ec2OutsideBrowser(svc.endpoint, svc.accounts["team-1"], "CreateSnapshot", {
      VolumeId: svc.volumes.web1,
      Description: "before the upgrade",
      "TagSpecification.1.ResourceType": "snapshot",
      "TagSpecification.1.Tag.1.Key": "Name",
      "TagSpecification.1.Tag.1.Value": "web1-before-upgrade",
      "TagSpecification.1.Tag.2.Key": "Note",
      "TagSpecification.1.Tag.2.Value": "x".repeat(200), // one word: it must wrap, not widen the page
    });
    const snapshotId = /<snapshotId>(snap-[0-9a-f]+)<\/snapshotId>/.exec(xml)[1];
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const d = await ec2OutsideBrowser(svc.endpoint, svc.accounts["team-1"], "DescribeSnapshots", { "SnapshotId.1": snapshotId });
      if (/<status>completed<\/status>/.test(d)) break;
      assert.ok(Date.now() < deadline, `snapshot ${snapshotId} did not complete: ${d}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const rr = await signedJsonOutsideBrowser(svc.endpoint, svc.accounts["team-1"], "/api/v1/restore-requests", "POST", {
      snapshotId,
      reason: "config overwritten",
    });
    assert.equal(rr.status, 200, JSON.stringify(rr.body));
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await stopService(svc);
  });

  for (const alias of ["team-1", "admin"]) {
    for (const { name, viewport } of VIEWPORTS) {
      for (const scheme of SCHEMES) {
        test(`${alias === "admin" ? "administrator" : "member"} at ${name} px, ${scheme}: every page axe clean, no sideways scroll`, async () => {
          const seen = await visitAll(alias, viewport, scheme, name);
          if (alias === "admin") assert.ok(seen.includes("Accounts and keys") && seen.includes("Audit log"), seen.join(", "));
        });
      }
    }
  }
});
