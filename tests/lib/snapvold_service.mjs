// A real snapvold for node test suites (the console's browser tests, the AWS SDK for JavaScript
// tests): on 127.0.0.1 port 0 in a fresh temp dir, set up with the snapvol CLI on the same data
// dir (accounts, keys, instances, volumes). Each suite extends SnapvoldService with what only it
// needs (the console dir, recording EC2 clients).
//
// Environment (ctest sets these; the defaults fit a `scripts/build` tree):
//   SNAPVOL_BIN, SNAPVOLD_BIN, SNAPVOL_GENVOL  the programs (a missing one fails at import)
//   SNAPVOL_KEEP_TMP                           keep the temp dir (data dir, daemon log)
//   SNAPVOL_DAEMON_CATALOG=postgresql          the catalog on PostgreSQL (ctest's *_pg runs, label
//                                              pg; tests/daemon/README.md "Modes"): the data dir is
//                                              made by `snapvol init --catalog URL` on a database of
//                                              its own in the cluster SNAPVOL_PG_URL_FILE names,
//                                              dropped by cleanup()

import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const SNAPVOL = process.env.SNAPVOL_BIN || join(REPO, "build/src/cli/snapvol");
export const SNAPVOLD = process.env.SNAPVOLD_BIN || join(REPO, "build/src/daemon/snapvold");
export const GENVOL = process.env.SNAPVOL_GENVOL || join(REPO, "build/bench/snapvol-genvol");
export const REGION = "us-east-1";
/** How long any one wait in a test may take before the test fails (a hang guard, not a
 *  performance assertion: the things awaited take well under a second here). */
export const WAIT_MS = 60_000;

for (const [what, path] of [["SNAPVOL_BIN", SNAPVOL], ["SNAPVOLD_BIN", SNAPVOLD], ["SNAPVOL_GENVOL", GENVOL]]) {
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`${what}: ${path} is not an executable; build it first or point ${what} at it`);
  }
}

export const CATALOG = process.env.SNAPVOL_DAEMON_CATALOG || "sqlite";
if (!["sqlite", "postgresql"].includes(CATALOG)) {
  throw new Error(`SNAPVOL_DAEMON_CATALOG=${CATALOG}: expected sqlite or postgresql`);
}

/** Runs one SQL statement with psql on `url`; returns its unaligned output. */
export function psql(url, sql) {
  return execFileSync("/usr/bin/psql", ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql], {
    encoding: "utf8",
    env: { PATH: "/usr/bin:/bin", PGCONNECT_TIMEOUT: "10" },
    timeout: WAIT_MS,
  }).trim();
}

/** The test cluster's URLs: the snapvol role's and the superuser's (tests/pg/pg_cluster.sh). */
function clusterUrls() {
  const file = process.env.SNAPVOL_PG_URL_FILE;
  if (!file) throw new Error("SNAPVOL_PG_URL_FILE is not set: run through ctest -L pg (the pg fixture)");
  return { url: readFileSync(file, "utf8").trim(), admin: readFileSync(join(dirname(file), "admin-url"), "utf8").trim() };
}

function cleanEnv() {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("AWS_") || k === "SNAPVOL_DATA_DIR") delete env[k];
  return env;
}

export function parseIni(text) {
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

export class SnapvoldService {
  /** prefix names the temp dir; args are added to snapvold's command line. */
  constructor({ prefix = "snapvol-", args = [] } = {}) {
    this.args = args;
    this.root = mkdtempSync(join(tmpdir(), prefix));
    this.dataDir = join(this.root, "data");
    this.logPath = join(this.root, "snapvold.log");
    this.accounts = {};
    this.volumes = {};
    this.instances = {};
    this.proc = null;
    this.endpoint = null;
    this.stderr = [];
    this.catalogUrl = ""; // the PostgreSQL catalog's URL (CATALOG postgresql), for psql
    this.database = "";
  }

  /** On PostgreSQL (CATALOG): a database of its own, and the data dir made on it, once. */
  makeCatalog() {
    if (CATALOG !== "postgresql" || this.database) return;
    const { url, admin } = clusterUrls();
    const name = `t_${randomBytes(6).toString("hex")}`;
    psql(admin, `CREATE DATABASE ${name} OWNER "${new URL(url).username}"`);
    this.database = name;
    const u = new URL(url);
    u.pathname = `/${name}`;
    this.catalogUrl = u.toString();
    this.cli("init", "--catalog", this.catalogUrl);
  }

  /** Starts snapvold and waits for its "listening" line; rejects with its stderr if it exits. */
  async start() {
    this.makeCatalog();
    this.proc = spawn(SNAPVOLD, ["--data-dir", this.dataDir, "--listen", "127.0.0.1:0", ...this.args], {
      env: cleanEnv(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    // Never leave a daemon behind, even when the test process dies early.
    const orphanGuard = () => this.proc.exitCode === null && this.proc.kill("SIGKILL");
    process.once("exit", orphanGuard);
    this.proc.once("exit", () => process.removeListener("exit", orphanGuard));
    const log = createWriteStream(this.logPath);
    this.proc.stderr.on("data", (d) => {
      log.write(d);
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

  logTail(n = 60) {
    return this.stderr.join("").split("\n").slice(-n).join("\n");
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

  /** A generated volume file (16 MiB unless `size` says otherwise) registered for `alias`
   *  with name `name`, optionally attached to an instance. */
  addVolume(alias, name, { seed = 2, size = "16M", instance, device, boot = false } = {}) {
    const dir = join(this.root, "sources");
    mkdirSync(dir, { recursive: true });
    const path = join(dir, `${name}.img`);
    execFileSync(GENVOL, ["create", "--size", size, "--seed", String(seed), path], { stdio: "ignore", timeout: WAIT_MS });
    const args = ["volume", "register", "--path", path, "--account-id", this.accounts[alias].accountId, "--name", name];
    if (instance) args.push("--instance-id", this.instances[instance], "--device", device);
    if (boot) args.push("--boot");
    const id = this.cli(...args).trim();
    this.volumes[name] = id;
    return id;
  }

  /** SIGTERM; resolves with the exit code (or the signal's name). */
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
    if (this.database) psql(clusterUrls().admin, `DROP DATABASE IF EXISTS ${this.database} WITH (FORCE)`);
    if (!process.env.SNAPVOL_KEEP_TMP) rmSync(this.root, { recursive: true, force: true });
    else console.log(`kept ${this.root}`);
  }
}
