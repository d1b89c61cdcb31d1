// Session and errors in the console (issue 15, item 7, and the keys of item 6): an
// administrator disables, enables and deletes access keys on the Accounts page; a key refused
// mid-session returns that console to sign-in with a message and no stale rows; the last
// administrator key is refused by name; an idle session ends after snapvold's
// --console-idle-timeout; a wrong clock is told in minutes; session-wide errors appear once;
// dialogs keep the focus inside and return it; Delete passes contrast in dark mode.
// Run: node --test tests/console/session.test.mjs   (environment: see harness.mjs)

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  closeConsolePage,
  defaultTimeFromNow,
  gainsFocus,
  goTo,
  launchBrowser,
  openConsolePage,
  screenshot,
  Service,
  signedInConsolePage,
  signedJsonOutsideBrowser,
  signInConsole,
  stopService,
} from "./harness.mjs";

let svc;
let browser;


const signedInPage = (alias, service = svc, options = {}) => signedInConsolePage(browser, service, alias, options.viewport);

/** whoami signed outside the browser with `acct`'s key: {status, body}. */
function whoamiOutside(acct) {
  return signedJsonOutsideBrowser(svc.endpoint, acct, "/api/v1/whoami");
}

/** The row of an access key on the Accounts page. */
const keyItem = (page, id) => page.locator(`li.key-item[data-access-key-id="${id}"]`);

/** The console is back on its sign-in form, keeps nothing, and says why. */
async function assertSignedOutWith(page, pattern) {
  const notice = page.getByTestId("session-ended");
  await notice.waitFor();
  assert.match(await notice.textContent(), pattern);
  assert.equal(await page.getByRole("navigation", { name: "Pages" }).count(), 0, "no navigation left");
  assert.equal(await page.locator("table").count(), 0, "no stale rows");
  assert.equal(await page.getByLabel("Access key ID").inputValue(), "", "the sign-in form is empty");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("snapvol.console.credentials")), null);
}

/** The WCAG contrast ratio of an element's text against its own background colour. */
async function contrastOf(locator) {
  return locator.evaluate((el) => {
    const rgb = (c) => c.match(/[\d.]+/g).slice(0, 3).map(Number);
    const lum = ([r, g, b]) => {
      const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const s = getComputedStyle(el);
    const [a, b] = [lum(rgb(s.color)), lum(rgb(s.backgroundColor))].sort((x, y) => y - x);
    return (a + 0.05) / (b + 0.05);
  });
}

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

describe("console session, keys and errors", () => {
  before(async () => {
    svc = await new Service(["--default-time", defaultTimeFromNow()]).start();
    svc.addAccount("team-1");
    svc.addAccount("team-2");
    svc.addVolume("team-1", "db1", { seed: 11 });
  });

  after(async () => {
    await stopService(svc);
  });

  test("a key disabled on the Accounts page returns its open console to sign-in; enabled, it signs in again", async () => {
    const team1 = svc.accounts["team-1"];
    const member = await signedInPage("team-1");
    await goTo(member, "Volumes");
    await member.locator(`tr[data-volume-id="${svc.volumes.db1}"]`).waitFor();

    const admin = await signedInPage("admin");
    await goTo(admin, "Accounts and keys");
    const item = keyItem(admin, team1.accessKeyId);
    assert.equal(await item.locator(".state").textContent(), "Active");
    await item.getByRole("button", { name: `Disable access key ${team1.accessKeyId}` }).click();
    await admin.getByTestId("key-change-done").filter({ hasText: `Disabled access key ${team1.accessKeyId} of team-1.` }).waitFor();
    await item.locator(".state", { hasText: "Disabled" }).waitFor();
    await screenshot(admin, "accounts-key-disabled");
    const refused = await whoamiOutside(team1);
    assert.equal(refused.status, 401);
    assert.equal(refused.body.error.code, "AuthFailure");

    // The member's next request is refused: back to sign-in, with the key named, nothing kept.
    await member.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Snapshots" }).click();
    await assertSignedOutWith(member, new RegExp(`no longer accepts the access key ${team1.accessKeyId}.*disabled or deleted`));
    assert.equal(await member.getByTestId("error-note").count(), 0, "one message, not an error per list");
    await screenshot(member, "signed-out-key-disabled");
    // Signing in with it now: refused in snapvol's words; the old notice gives way to it.
    await member.getByLabel("Access key ID").fill(team1.accessKeyId);
    await member.getByLabel("Secret access key").fill(team1.secretAccessKey);
    await member.getByRole("button", { name: "Sign in" }).click();
    await member.locator("#sign-in-error").filter({ hasText: /disabled or deleted/ }).waitFor();
    assert.equal(await member.getByTestId("session-ended").count(), 0);
    assert.equal(await member.getByRole("alert").count(), 1, "the error appears once");

    await item.getByRole("button", { name: `Enable access key ${team1.accessKeyId}` }).click();
    await item.locator(".state", { hasText: "Active" }).waitFor();
    assert.equal((await whoamiOutside(team1)).status, 200);
    await member.getByRole("button", { name: "Sign in" }).click();
    await member.getByTestId("whoami").filter({ hasText: "team-1" }).waitFor();
    await closeConsolePage(member);
    await closeConsolePage(admin);
  });

  test("Delete asks first (Escape and Cancel delete nothing, focus returns), then deletes; the console's own key warns", async () => {
    const team2 = svc.accounts["team-2"];
    const admin = await signedInPage("admin");
    await goTo(admin, "Accounts and keys");
    const del = admin.getByRole("button", { name: `Delete access key ${team2.accessKeyId}` });
    await del.click();
    const dialog = admin.getByRole("dialog", { name: `Delete access key ${team2.accessKeyId}?` });
    await dialog.waitFor();
    // Focus moves into the dialog (on Cancel: the safe choice), and Tab stays inside it.
    assert.equal(await gainsFocus(dialog.getByRole("button", { name: "Cancel" })), true);
    for (let i = 0; i < 5; i++) {
      await admin.keyboard.press("Tab");
      assert.equal(await dialog.evaluate((d) => d.contains(document.activeElement)), true, `Tab ${i + 1} stays in the dialog`);
    }
    await admin.keyboard.press("Shift+Tab");
    assert.equal(await dialog.evaluate((d) => d.contains(document.activeElement)), true, "Shift+Tab stays in the dialog");
    await screenshot(admin, "delete-key-confirm");
    await admin.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached" });
    assert.equal(await gainsFocus(del), true, "focus returns to the Delete button");
    await del.click();
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "detached" });
    assert.equal((await whoamiOutside(team2)).status, 200, "nothing was deleted");

    // Confirmed: the key is gone from the list and refused.
    await del.click();
    assert.equal(await dialog.getByTestId("own-key-warning").count(), 0, "not the console's own key");
    await dialog.getByRole("button", { name: "Delete key" }).click();
    await admin.getByTestId("key-change-done").filter({ hasText: `Deleted access key ${team2.accessKeyId} of team-2.` }).waitFor();
    await keyItem(admin, team2.accessKeyId).waitFor({ state: "detached" });
    const refused = await whoamiOutside(team2);
    assert.equal(refused.body.error.code, "AuthFailure");
    await closeConsolePage(admin);
  });

  test("a key change in flight cannot be dismissed as if cancelled", async () => {
    const profile = svc.cli("key", "create", "--account-id", svc.accounts["team-1"].accountId);
    const spare = /aws_access_key_id = (\S+)/.exec(profile)[1];
    const admin = await signedInPage("admin");
    await goTo(admin, "Accounts and keys");
    let release;
    const gate = new Promise((r) => (release = r));
    await admin.route(`**/api/v1/keys/${spare}`, async (route) => {
      await gate;
      await route.continue();
    });
    await admin.getByRole("button", { name: `Delete access key ${spare}` }).click();
    const dialog = admin.getByRole("dialog", { name: `Delete access key ${spare}?` });
    await dialog.getByRole("button", { name: "Delete key" }).click();
    await dialog.getByRole("button", { name: "Deleting…" }).waitFor();
    await admin.keyboard.press("Escape");
    await dialog.getByTestId("busy-note").filter({ hasText: /cannot be cancelled/ }).waitFor();
    await dialog.getByRole("button", { name: "Cancel" }).click();
    assert.equal(await dialog.isVisible(), true, "neither Escape nor Cancel closed it");
    release();
    await admin.getByTestId("key-change-done").filter({ hasText: `Deleted access key ${spare} of team-1.` }).waitFor();
    await dialog.waitFor({ state: "detached" });
    await admin.locator(`li.key-item[data-access-key-id="${spare}"]`).waitFor({ state: "detached" }); // the list reloaded
    await closeConsolePage(admin);
  });

  test("the last active administrator key is refused by name; with another one, disabling the console's own key signs it out", async () => {
    const adminAcct = svc.accounts.admin;
    const admin = await signedInPage("admin");
    await goTo(admin, "Accounts and keys");
    for (const [button, confirmLabel] of [["Disable", "Disable key"], ["Delete", "Delete key"]]) {
      await admin.getByRole("button", { name: `${button} access key ${adminAcct.accessKeyId}` }).click();
      const dialog = admin.getByRole("dialog", { name: `${button} access key ${adminAcct.accessKeyId}?` });
      await dialog.getByTestId("own-key-warning").filter({ hasText: "This is the key this console is signed in with." }).waitFor();
      await dialog.getByRole("button", { name: confirmLabel }).click();
      const err = dialog.getByTestId("error-note");
      await err.waitFor();
      const text = await err.textContent();
      assert.match(text, new RegExp(`${adminAcct.accessKeyId} is the last active key of an administrator \\(account ${adminAcct.alias}\\)`));
      assert.match(text, /\(IncorrectState\)/);
      assert.equal(await err.count(), 1, "shown once, in the dialog");
      if (button === "Disable") await screenshot(admin, "last-admin-key-refused");
      await dialog.getByRole("button", { name: "Cancel" }).click();
      await dialog.waitFor({ state: "detached" });
    }
    assert.equal((await whoamiOutside(adminAcct)).status, 200, "the key is unchanged");

    // A second administrator key: now the console's own may be disabled, and it signs out.
    svc.cli("key", "create", "--account-id", adminAcct.accountId);
    await admin.getByRole("button", { name: "Refresh" }).click();
    await admin.locator(`tr[data-account-id="${adminAcct.accountId}"] li.key-item`).nth(1).waitFor();
    await admin.getByRole("button", { name: `Disable access key ${adminAcct.accessKeyId}` }).click();
    const dialog = admin.getByRole("dialog", { name: `Disable access key ${adminAcct.accessKeyId}?` });
    await dialog.getByRole("button", { name: "Disable key" }).click();
    await assertSignedOutWith(admin, new RegExp(`no longer accepts the access key ${adminAcct.accessKeyId}`));
    svc.cli("key", "enable", adminAcct.accessKeyId);
    assert.equal((await whoamiOutside(adminAcct)).status, 200);
    await closeConsolePage(admin);
  });

  test("a wrong clock is told in minutes, at sign-in and once for a whole page", async () => {
    const page = await openConsolePage(browser, svc.endpoint);
    // The page's clock, skewed at will (Date only: timers and performance.now keep running).
    await page.addInitScript(() => {
      const Real = Date;
      let offset = 0;
      window.__setClockOffset = (ms) => (offset = ms);
      class Skewed extends Real {
        constructor(...args) {
          if (args.length === 0) super(Real.now() + offset);
          else super(...args);
        }
        static now() {
          return Real.now() + offset;
        }
      }
      window.Date = Skewed;
    });
    await page.reload();
    await page.evaluate(() => window.__setClockOffset(-47 * 60_000));
    const team1 = svc.accounts["team-1"];
    await page.getByLabel("Access key ID").fill(team1.accessKeyId);
    await page.getByLabel("Secret access key").fill(team1.secretAccessKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    const err = page.locator("#sign-in-error");
    await err.waitFor();
    assert.match(await err.textContent(), /Your computer's clock is off by 47 minutes \(it is behind snapvold's\)/);
    assert.match(await err.textContent(), /\(RequestExpired\)/);
    assert.doesNotMatch(await err.textContent(), /\d{8}T\d{6}Z/, "no raw timestamps");
    await screenshot(page, "sign-in-clock-behind");

    // Signed in with the right time; then the clock jumps 20 minutes ahead: one banner.
    await page.evaluate(() => window.__setClockOffset(0));
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByTestId("whoami").filter({ hasText: "team-1" }).waitFor();
    await page.evaluate(() => window.__setClockOffset(20 * 60_000 + 10_000));
    await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Snapshots" }).click();
    const banner = page.getByTestId("session-banner");
    await banner.waitFor();
    assert.match(await banner.textContent(), /clock is off by 20 minutes \(it is ahead of snapvold's\)/);
    await page.waitForTimeout(500); // every list of the page has answered by now
    assert.equal(await page.getByText(/clock is off by/).count(), 1, "said once for the page");
    await closeConsolePage(page);
  });

  test("no network: said once for the page, not once per list", async () => {
    const page = await signedInPage("team-1");
    await page.route("**/api/v1/**", (route) => route.abort());
    await page.route((url) => url.pathname === "/", (route) => route.abort());
    await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Snapshots" }).click();
    const banner = page.getByTestId("session-banner");
    await banner.waitFor();
    assert.match(await banner.textContent(), /snapvold cannot be reached\. Check that it is running/);
    await page.waitForTimeout(500);
    assert.equal(await page.getByText("snapvold cannot be reached.").count(), 1);
    assert.equal(await page.getByTestId("error-note").count(), 0);
    await closeConsolePage(page);
  });

  test("Delete buttons pass contrast in dark mode; the Accounts page is axe clean in both themes", async () => {
    for (const colorScheme of ["light", "dark"]) {
      const page = await openConsolePage(browser, svc.endpoint);
      await page.emulateMedia({ colorScheme });
      await signInConsole(page, svc.accounts.admin);
      await goTo(page, "Accounts and keys");
      const del = page.getByRole("button", { name: /^Delete access key / }).first();
      await del.waitFor();
      const ratio = await contrastOf(del);
      assert.ok(ratio >= 4.5, `Delete's text contrast in ${colorScheme} mode is ${ratio.toFixed(2)}:1, below 4.5:1`);
      await screenshot(page, `accounts-${colorScheme}`);
      await closeConsolePage(page);
    }
  });
});

describe("idle sign-out (snapvold --console-idle-timeout 10)", () => {
  let idleSvc;
  before(async () => {
    idleSvc = await new Service(["--default-time", defaultTimeFromNow(), "--console-idle-timeout", "10"]).start();
    idleSvc.addAccount("team-1");
  });
  after(async () => {
    await stopService(idleSvc);
  });

  test("activity keeps the session; 10 seconds without any ends it with a message", async () => {
    const { status, body } = await signedJsonOutsideBrowser(idleSvc.endpoint, idleSvc.accounts["team-1"], "/api/v1/whoami");
    assert.equal(status, 200);
    assert.equal(body.consoleIdleSeconds, 10, "whoami tells the console its idle time");
    const page = await signedInPage("team-1", idleSvc);
    // Clicks every 3 seconds for 15 seconds: still signed in.
    for (let i = 0; i < 5; i++) {
      await page.waitForTimeout(3000);
      await page.getByRole("heading", { level: 1 }).click();
    }
    assert.equal(await page.getByTestId("whoami").count(), 1, "activity kept the session");
    const quietSince = Date.now();
    await assertSignedOutWith(page, /Signed out after 10 seconds without activity\. Sign in again/);
    const quiet = Date.now() - quietSince;
    assert.ok(quiet >= 9000, `signed out after ${quiet} ms of quiet, before the 10 s`);
    await screenshot(page, "signed-out-idle");
    await closeConsolePage(page);
  });

  test("a reload after the idle time does not bring the session back", async () => {
    const page = await signedInPage("team-1", idleSvc);
    // The tab keeps its key; a reload 11 seconds after the last activity signs out.
    await page.evaluate(() => sessionStorage.setItem("snapvol.console.lastActivity", String(Date.now() - 11_000)));
    await page.reload();
    await assertSignedOutWith(page, /Signed out after 10 seconds without activity/);
    await closeConsolePage(page);
  });
});
