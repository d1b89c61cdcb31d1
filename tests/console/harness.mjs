// Test harness for the console's browser tests: a real snapvold on 127.0.0.1 port 0 in a
// fresh temp dir, set up with the snapvol CLI on the same data dir (accounts, keys, instances,
// volumes), and headless Chromium driven by playwright-core.
//
// Environment (ctest sets these; the defaults fit a `scripts/build` tree):
//   SNAPVOL_BIN, SNAPVOLD_BIN, SNAPVOL_GENVOL  the programs
//   SNAPVOL_CONSOLE_DIST                       the built console (console/dist)
//   SNAPVOL_CHROMIUM                           the browser (/usr/bin/chromium)
//   SNAPVOL_CONSOLE_ARTIFACTS                  where screenshots go
//   SNAPVOL_KEEP_TMP                           keep the temp dir (data dir, daemon log)

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";

import { psql, REGION, REPO, SnapvoldService, WAIT_MS } from "../lib/snapvold_service.mjs";

export { REGION, REPO, WAIT_MS };

const CONSOLE = join(REPO, "console");
// playwright-core and the signer are the console's own npm packages (console/node_modules).
const requireFromConsole = createRequire(join(CONSOLE, "package.json"));

export const CONSOLE_DIST = process.env.SNAPVOL_CONSOLE_DIST || join(CONSOLE, "dist");
export const CHROMIUM = process.env.SNAPVOL_CHROMIUM || "/usr/bin/chromium";
export const ARTIFACTS = process.env.SNAPVOL_CONSOLE_ARTIFACTS || join(REPO, "build/tests/console/artifacts");

/** The daemon with the console's files, plus any extra snapvold arguments. */
export class Service extends SnapvoldService {
  constructor(extraArgs = []) {
    super({ prefix: "snapvol-console-", args: ["--console-dir", CONSOLE_DIST, ...extraArgs] });
  }
}

/** Stops `svc` (if it started), removes its temp dir and asserts snapvold exited 0 on SIGTERM:
 *  what every suite's after() does. */
export async function stopService(svc) {
  if (!svc) return;
  const code = await svc.stop();
  svc.cleanup();
  assert.equal(code, 0, `snapvold exited ${code} after SIGTERM\n${svc.logTail()}`);
}

/** A snapshot taken offline with `svc`'s CLI (synchronous: completed when it returns), tagged
 *  with "Key=Value" strings; returns its id. */
export function cliSnapshot(svc, volume, ...tags) {
  const out = svc.cli("snapshot", "create", "--volume-id", svc.volumes[volume], ...tags.flatMap((t) => ["--tag", t]));
  const id = /snap-[0-9a-f]{17}/.exec(out)?.[0];
  assert.ok(id, `no snapshot id in: ${out}`);
  return id;
}

/** A snapshot as a lifecycle policy's run leaves it: taken offline with the CLI, then given the
 *  system tags of `policyId`'s schedule `schedule` in the catalog itself (a user can set no
 *  aws: tag, through the API or the CLI, so set-up writes them where the scheduler does). */
export function policySnapshot(svc, volume, policyId, schedule) {
  const id = cliSnapshot(svc, volume);
  if (svc.catalogUrl) {
    psql(svc.catalogUrl, `INSERT INTO tags (resource_id, key, value) VALUES ('${id}', 'aws:dlm:lifecycle-policy-id', '${policyId}'), ` +
      `('${id}', 'aws:dlm:lifecycle-schedule-name', '${schedule}')`);
    return id;
  }
  const script = [
    "import sqlite3, sys",
    "db = sqlite3.connect(sys.argv[1], timeout=10)",
    "with db:",
    "    for k, v in (('aws:dlm:lifecycle-policy-id', sys.argv[3]), ('aws:dlm:lifecycle-schedule-name', sys.argv[4])):",
    "        db.execute('INSERT INTO tags (resource_id, key, value) VALUES (?, ?, ?)', (sys.argv[2], k, v))",
  ].join("\n");
  execFileSync("/usr/bin/python3", ["-c", script, join(svc.dataDir, "catalog.db"), id, policyId, schedule]);
  return id;
}

export async function launchBrowser() {
  const { chromium } = requireFromConsole("playwright-core");
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
}

/** A signed JSON request (snapvol's JSON API, or `service` "dlm") made outside the browser with the same signer the console
 *  bundles: to learn what the server answers (e.g. to a wrong secret) independently of the
 *  page, and for set-up. Resolves with {status, body}. */
export async function signedJsonOutsideBrowser(endpoint, creds, path, method = "GET", json = undefined, service = "snapvol") {
  const { SignatureV4 } = requireFromConsole("@smithy/signature-v4");
  const { Sha256 } = requireFromConsole("@aws-crypto/sha256-js");
  const url = new URL(path, endpoint);
  const signer = new SignatureV4({ service, region: REGION, credentials: creds, sha256: Sha256, applyChecksum: false });
  const body = json === undefined ? undefined : JSON.stringify(json);
  const signed = await signer.sign({
    method,
    protocol: url.protocol,
    hostname: url.hostname,
    port: Number(url.port),
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers: body === undefined ? { host: url.host } : { host: url.host, "content-type": "application/json" },
    body,
  });
  const headers = { ...signed.headers };
  delete headers.host;
  const res = await fetch(url, { method, headers, body });
  return { status: res.status, body: await res.json() };
}

/** Runs axe-core (WCAG 2 A and AA rules) on the page as it is now; returns the violations as
 *  lines of text. axe is evaluated over the DevTools protocol, which the page's CSP allows. */
export async function accessibilityViolations(page) {
  const source = readFileSync(requireFromConsole.resolve("axe-core/axe.min.js"), "utf8");
  await page.evaluate(source);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa"] } });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")) }));
  });
  return violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 5).join(", ")}`);
}

let shotCount = 0;
/** Saves a full-page screenshot into the artifacts directory and checks the page with axe;
 *  throws when axe finds a WCAG 2 A/AA violation. Returns the screenshot's path. */
export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  shotCount += 1;
  const path = join(ARTIFACTS, `${String(shotCount).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path, fullPage: true });
  const violations = await accessibilityViolations(page);
  if (violations.length > 0) throw new Error(`accessibility violations on "${name}" (${path}):\n${violations.join("\n")}`);
  return path;
}

/** A signed EC2 Query request made outside the browser (test set-up only); resolves with the
 *  XML text, rejects with the server's error document. */
export async function ec2OutsideBrowser(endpoint, creds, action, params = {}) {
  const { SignatureV4 } = requireFromConsole("@smithy/signature-v4");
  const { Sha256 } = requireFromConsole("@aws-crypto/sha256-js");
  const url = new URL("/", endpoint);
  const body = new URLSearchParams({ Action: action, Version: "2016-11-15", ...params }).toString().replace(/\+/g, "%20");
  const signer = new SignatureV4({ service: "ec2", region: REGION, credentials: creds, sha256: Sha256, applyChecksum: false });
  const signed = await signer.sign({
    method: "POST",
    protocol: url.protocol,
    hostname: url.hostname,
    port: Number(url.port),
    path: "/",
    query: {},
    headers: { host: url.host, "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
    body,
  });
  const headers = { ...signed.headers };
  delete headers.host;
  const res = await fetch(url, { method: "POST", headers, body });
  const text = await res.text();
  if (!res.ok) throw new Error(`${action} answered ${res.status}: ${text}`);
  return text;
}

/** "hh:mm" UTC of `date`. */
export function utcHhMm(date) {
  return date.toISOString().slice(11, 16);
}

/** snapvold's arguments that make lifecycle schedules fall due early (the test flag
 *  --schedule-clock-offset-seconds), and `count` consecutive whole minutes (Dates, for schedules'
 *  Times): all later than 30 s from now in real time (so a policy the set-up creates before then
 *  counts them), the last reached `leadSeconds` from now on the schedules' clock, the earlier
 *  ones sooner. A suite then waits seconds for its runs, not up to minutes. Runs and snapshots
 *  keep the real time. Also tests/daemon/daemon_helpers.py (schedule_clock_args). */
export function scheduleClockArgs(leadSeconds = 20, count = 1) {
  const now = Date.now() / 1000;
  const first = Math.ceil((now + 30) / 60) * 60;
  const offset = Math.ceil(first + (count - 1) * 60 - now - leadSeconds);
  const minutes = Array.from({ length: count }, (_, i) => new Date((first + 60 * i) * 1000));
  return { args: [`--schedule-clock-offset-seconds=${offset}`], minutes };
}

/** "hh:mm" UTC `hours` from now: a --default-time that keeps the default lifecycle policy from
 *  running during a suite (12 hours away unless told). */
export function defaultTimeFromNow(hours = 12) {
  return utcHhMm(new Date(Date.now() + hours * 3600_000));
}

/** DescribeSnapshots made outside the browser (signed here, not by the console), its XML read
 *  with `page`'s DOMParser (not the console's code): [{snapshotId, volumeId, description,
 *  tags: [{key, value}]}], tags sorted by key. */
export async function describeSnapshotsOutsideBrowser(page, endpoint, creds, params = {}) {
  const xml = await ec2OutsideBrowser(endpoint, creds, "DescribeSnapshots", params);
  return page.evaluate((text) => {
    const doc = new DOMParser().parseFromString(text, "application/xml");
    const kid = (el, name) => [...el.children].find((c) => c.localName === name);
    const text1 = (el, name) => kid(el, name)?.textContent ?? null;
    const itemsOf = (el, name) => [...(kid(el, name)?.children ?? [])].filter((c) => c.localName === "item");
    return itemsOf(doc.documentElement, "snapshotSet").map((s) => ({
      snapshotId: text1(s, "snapshotId"),
      volumeId: text1(s, "volumeId"),
      description: text1(s, "description") ?? "",
      tags: itemsOf(s, "tagSet")
        .map((t) => ({ key: text1(t, "key"), value: text1(t, "value") ?? "" }))
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
    }));
  }, xml);
}

/** Counts the EC2 requests `page` sends for `action` (exactly that action: CreateSnapshot is
 *  not CreateSnapshots); read `.count`. */
export function countEc2Requests(page, action) {
  const counter = { count: 0 };
  const pattern = new RegExp(`(^|&)Action=${action}(&|$)`);
  page.on("request", (r) => {
    if (r.method() === "POST" && pattern.test(r.postData() ?? "")) counter.count += 1;
  });
  return counter;
}

/** Whether `locator`'s element has the keyboard focus or gets it within `ms`: the console
 *  moves focus in an effect after the render a click causes, which can lag the click a frame
 *  on a loaded machine. */
export async function gainsFocus(locator, ms = 5000) {
  const element = await locator.elementHandle();
  try {
    await locator.page().waitForFunction((el) => el === document.activeElement, element, { timeout: ms });
    return true;
  } catch {
    return false;
  }
}

/** A fresh browser context (its own sessionStorage) on the console, with uncaught page errors
 *  and CSP violations collected in `page.pageErrors` (closeConsolePage asserts there are none).
 *  `timezoneId` emulates a time zone; `hash` is the console route to open ("#/snapshots"). */
export async function openConsolePage(browser, endpoint, viewport = { width: 1280, height: 800 }, { timezoneId, hash = "" } = {}) {
  const context = await browser.newContext(timezoneId === undefined ? { viewport } : { viewport, timezoneId });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.pageErrors = [];
  page.on("pageerror", (e) => page.pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) page.pageErrors.push(m.text());
  });
  await page.goto(`${endpoint}/console/${hash}`);
  return page;
}

export async function closeConsolePage(page) {
  const errors = page.pageErrors;
  await page.context().close();
  if (errors.length > 0) throw new Error(`uncaught errors or CSP violations in the page:\n${errors.join("\n")}`);
}

/** Signs in with `acct`'s key on the sign-in form and waits until the console says who it is. */
export async function signInConsole(page, acct) {
  await page.getByLabel("Access key ID").fill(acct.accessKeyId);
  await page.getByLabel("Secret access key").fill(acct.secretAccessKey);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("whoami").filter({ hasText: acct.alias }).waitFor();
}

/** openConsolePage, then signInConsole as `svc`'s account `alias`. */
export async function signedInConsolePage(browser, svc, alias, viewport = undefined, options = {}) {
  const page = await openConsolePage(browser, svc.endpoint, viewport, options);
  await signInConsole(page, svc.accounts[alias]);
  return page;
}

/** Follows the navigation's link `linkName` and waits for the page's heading of that name. */
export async function goTo(page, linkName) {
  await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: linkName }).click();
  await page.getByRole("heading", { level: 1, name: linkName }).waitFor();
}
