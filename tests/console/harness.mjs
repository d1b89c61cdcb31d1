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

import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, "../..");
const CONSOLE = join(REPO, "console");
// playwright-core and the signer are the console's own npm packages (console/node_modules).
const requireFromConsole = createRequire(join(CONSOLE, "package.json"));

export const SNAPVOL = process.env.SNAPVOL_BIN || join(REPO, "build/src/cli/snapvol");
export const SNAPVOLD = process.env.SNAPVOLD_BIN || join(REPO, "build/src/daemon/snapvold");
export const GENVOL = process.env.SNAPVOL_GENVOL || join(REPO, "build/bench/snapvol-genvol");
export const CONSOLE_DIST = process.env.SNAPVOL_CONSOLE_DIST || join(CONSOLE, "dist");
export const CHROMIUM = process.env.SNAPVOL_CHROMIUM || "/usr/bin/chromium";
export const ARTIFACTS = process.env.SNAPVOL_CONSOLE_ARTIFACTS || join(REPO, "build/tests/console/artifacts");
export const REGION = "us-east-1";
/** How long any one wait in a test may take before the test fails (a hang guard, not a
 *  performance assertion: the things awaited take well under a second here). */
export const WAIT_MS = 60_000;

function cleanEnv() {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("AWS_") || k === "SNAPVOL_DATA_DIR") delete env[k];
  return env;
}

function parseIni(text) {
  const out = {};
  let section = null;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const m = /^\[(.+)\]$/.exec(line);
    if (m) {
      section = out[m[1]] = {};
      continue;
    }
    const eq = line.indexOf("=");
    if (section && eq > 0) section[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return out;
}

export class Service {
  constructor(extraArgs = []) {
    this.extraArgs = extraArgs;
    this.root = mkdtempSync(join(tmpdir(), "snapvol-console-"));
    this.dataDir = join(this.root, "data");
    this.logPath = join(this.root, "snapvold.log");
    this.accounts = {};
    this.volumes = {};
    this.instances = {};
    this.proc = null;
    this.endpoint = null;
    this.stderr = [];
  }

  /** Starts snapvold and waits for its "listening" line; rejects with its stderr if it exits. */
  async start() {
    this.proc = spawn(
      SNAPVOLD,
      ["--data-dir", this.dataDir, "--listen", "127.0.0.1:0", "--console-dir", CONSOLE_DIST, ...this.extraArgs],
      { env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] },
    );
    // Never leave a daemon behind, even when the test process dies early.
    const orphanGuard = () => this.proc.exitCode === null && this.proc.kill("SIGKILL");
    process.once("exit", orphanGuard);
    this.proc.once("exit", () => process.removeListener("exit", orphanGuard));
    this.proc.stderr.on("data", (d) => {
      this.stderr.push(d.toString());
      if (this.stderr.length > 400) this.stderr.splice(0, this.stderr.length - 400);
    });
    const lines = createInterface({ input: this.proc.stdout });
    this.endpoint = await new Promise((resolveStart, rejectStart) => {
      const guard = setTimeout(() => rejectStart(new Error(`snapvold printed no 'listening' line\n${this.logTail()}`)), WAIT_MS);
      this.proc.once("exit", (code) => {
        clearTimeout(guard);
        rejectStart(new Error(`snapvold exited (${code}) before listening\n${this.logTail()}`));
      });
      lines.on("line", (line) => {
        const m = /snapvold listening on (http:\/\/127\.0\.0\.1:(\d+))/.exec(line);
        if (m) {
          clearTimeout(guard);
          resolveStart(m[1]);
        }
      });
    });
    const admin = parseIni(readFileSync(join(this.dataDir, "admin-credentials"), "utf8"))["snapvol-admin"];
    const adminRow = this.listAccounts().find((a) => a.Administrator);
    this.accounts.admin = {
      alias: adminRow.Alias,
      accountId: adminRow.AccountId,
      accessKeyId: admin.aws_access_key_id,
      secretAccessKey: admin.aws_secret_access_key,
    };
    return this;
  }

  logTail() {
    return this.stderr.join("").split("\n").slice(-60).join("\n");
  }

  /** The offline CLI on the daemon's data dir; returns stdout, throws with stderr on failure. */
  cli(...args) {
    try {
      return execFileSync(SNAPVOL, ["--data-dir", this.dataDir, ...args.map(String)], {
        env: cleanEnv(),
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        timeout: WAIT_MS,
      });
    } catch (e) {
      throw new Error(`snapvol ${args.join(" ")} failed: ${e.stderr || e.message}`);
    }
  }

  listAccounts() {
    return JSON.parse(this.cli("account", "list", "-o", "json")).Accounts;
  }

  addAccount(alias) {
    const accountId = this.cli("account", "create", "--alias", alias).trim();
    const profile = parseIni(this.cli("key", "create", "--account-id", accountId))[`snapvol-${alias}`];
    const acct = { alias, accountId, accessKeyId: profile.aws_access_key_id, secretAccessKey: profile.aws_secret_access_key };
    this.accounts[alias] = acct;
    return acct;
  }

  addInstance(alias, name) {
    const id = this.cli("instance", "create", "--account-id", this.accounts[alias].accountId, "--name", name).trim();
    this.instances[name] = id;
    return id;
  }

  /** A generated 16 MiB volume file registered for `alias`, optionally attached to an instance. */
  addVolume(alias, name, { seed = 2, instance, device, boot = false } = {}) {
    const dir = join(this.root, "sources");
    mkdirSync(dir, { recursive: true });
    const path = join(dir, `${name}.img`);
    execFileSync(GENVOL, ["create", "--size", "16M", "--seed", String(seed), path], { stdio: "ignore", timeout: WAIT_MS });
    const args = ["volume", "register", "--path", path, "--account-id", this.accounts[alias].accountId, "--name", name];
    if (instance) args.push("--instance-id", this.instances[instance], "--device", device);
    if (boot) args.push("--boot");
    const id = this.cli(...args).trim();
    this.volumes[name] = id;
    return id;
  }

  /** SIGTERM; resolves with the exit code. */
  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return this.proc?.exitCode ?? 0;
    const exited = new Promise((r) => this.proc.once("exit", (code, signal) => r(code ?? signal)));
    this.proc.kill("SIGTERM");
    const guard = setTimeout(() => this.proc.kill("SIGKILL"), 20_000);
    const code = await exited;
    clearTimeout(guard);
    return code;
  }

  cleanup() {
    if (!process.env.SNAPVOL_KEEP_TMP) rmSync(this.root, { recursive: true, force: true });
  }
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
