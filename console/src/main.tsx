// The console's shell: sign-in, navigation between pages (hash routes, so snapvold serves
// one static index.html), and sign-out.

import { render } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";

import { AccountDirectoryProvider } from "./account_names";
import { asApiError, explain, isKeyRefused, isSessionWide, onApiError, type ApiError } from "./api/errors";
import {
  clearCredentials,
  loadCredentials,
  loadLastActivity,
  saveCredentials,
  saveLastActivity,
  type Credentials,
} from "./api/session";
import { whoami } from "./api/snapvol";
import { SessionContext, type Session } from "./context";
import { AccountsPage } from "./pages/accounts";
import { AuditPage } from "./pages/audit";
import { JobsPage } from "./pages/jobs";
import { InstancesPage } from "./pages/instances";
import { PoliciesPage } from "./pages/policies";
import { RecycleBinPage } from "./pages/recycle_bin";
import { RestoreRequestsPage } from "./pages/restore_requests";
import { RollbacksPage } from "./pages/rollbacks";
import { SignIn } from "./pages/sign_in";
import { SnapshotDetailsPage } from "./pages/snapshot_details";
import { SnapshotsPage } from "./pages/snapshots";
import { VolumeDetailsPage } from "./pages/volume_details";
import { VolumesPage } from "./pages/volumes";
import { TimeZoneSetting } from "./time";

interface Route {
  path: string;
  title: string;
  /** The navigation's heading this page is listed under (as in the EC2 console). */
  group: string;
  adminOnly?: boolean;
  /** A details route (#/path/ID): not in the navigation; `group`'s list page is marked current. */
  param?: { listPath: string };
  page: (props: { query: URLSearchParams; id: string }) => preact.JSX.Element;
}

const kRoutes: Route[] = [
  { path: "volumes", title: "Volumes", group: "Elastic Block Store", page: VolumesPage },
  { path: "snapshots", title: "Snapshots", group: "Elastic Block Store", page: SnapshotsPage },
  { path: "policies", title: "Lifecycle policies", group: "Elastic Block Store", page: PoliciesPage },
  { path: "restore-requests", title: "Restore requests", group: "Elastic Block Store", page: RestoreRequestsPage },
  { path: "rollbacks", title: "Rollback tasks", group: "Elastic Block Store", page: RollbacksPage },
  { path: "recycle-bin", title: "Recycle Bin", group: "Elastic Block Store", page: RecycleBinPage },
  { path: "instances", title: "Instances", group: "Instances", page: InstancesPage },
  { path: "accounts", title: "Accounts and keys", group: "Administration", adminOnly: true, page: AccountsPage },
  { path: "audit", title: "Audit log", group: "Administration", adminOnly: true, page: AuditPage },
  { path: "jobs", title: "Maintenance jobs", group: "Administration", adminOnly: true, page: JobsPage },
  { path: "snapshot", title: "Snapshot details", group: "Elastic Block Store", param: { listPath: "snapshots" }, page: SnapshotDetailsPage },
  { path: "volume", title: "Volume details", group: "Elastic Block Store", param: { listPath: "volumes" }, page: VolumeDetailsPage },
];

/** "#/snapshot/snap-1?x=y" → path "snapshot", id "snap-1" (decoded, "" when absent). */
function parseHash(hash: string): { path: string; id: string; query: URLSearchParams } {
  const h = hash.replace(/^#\/?/, "");
  const [full, qs] = h.split("?", 2);
  const slash = full.indexOf("/");
  const path = slash < 0 ? full : full.slice(0, slash);
  let id = slash < 0 ? "" : full.slice(slash + 1);
  try {
    id = decodeURIComponent(id);
  } catch {
    // shown as typed; the page says it is not a valid id
  }
  return { path: path || "volumes", id, query: new URLSearchParams(qs ?? "") };
}

/** The route the address names, following every change of it. The listener is added as the
 *  shell is put on the page (a layout effect, not a later effect), and the address is read
 *  once more then: an address typed while the shell was being drawn (just after sign-in) is
 *  not missed, which left the page before it on screen. */
function useHashRoute() {
  const [hash, setHash] = useState(() => location.hash);
  useLayoutEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener("hashchange", on);
    on();
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return useMemo(() => parseHash(hash), [hash]);
}

/** Idle sign-out when whoami does not say (an older snapvold): 30 minutes. */
const kDefaultIdleSeconds = 30 * 60;

function idleWords(seconds: number): string {
  const minutes = Math.round(seconds / 60);
  if (minutes >= 1) return `${minutes} minute${minutes === 1 ? "" : "s"}`;
  return `${seconds} seconds`;
}

/** Why the session ended, shown on the sign-in form until the next attempt. */
function keyRefusedNotice(accessKeyId: string): string {
  return (
    `Signed out: snapvol no longer accepts the access key ${accessKeyId}. It has been disabled or deleted, ` +
    "or its secret has changed. Sign in with an active key; an administrator can enable yours or create a new one."
  );
}

function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [restoring, setRestoring] = useState<boolean>(() => loadCredentials() !== null);
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const [banner, setBanner] = useState<ApiError | undefined>(undefined);
  const sessionRef = useRef<Session | null>(null);
  sessionRef.current = session;

  const endSession = (why: string) => {
    clearCredentials();
    sessionRef.current = null;
    setSession(null);
    setBanner(undefined);
    setNotice(why);
  };

  // A reload of the tab keeps the key (sessionStorage) and asks the server who it is again,
  // unless the session has been idle too long meanwhile.
  useEffect(() => {
    const creds = loadCredentials();
    if (!creds) return;
    whoami(creds).then(
      (me) => {
        const idle = me.consoleIdleSeconds ?? kDefaultIdleSeconds;
        const last = loadLastActivity();
        setRestoring(false);
        if (last !== undefined && Date.now() - last > idle * 1000) {
          endSession(`Signed out after ${idleWords(idle)} without activity. Sign in again to go on.`);
          return;
        }
        setSession({ creds, me });
      },
      (e) => {
        const err = asApiError(e);
        clearCredentials();
        setRestoring(false);
        if (isKeyRefused(err)) setNotice(keyRefusedNotice(creds.accessKeyId));
        else {
          const { what, todo } = explain(err);
          setNotice(`${what} ${todo} (${err.code})`.replace(/\s+/g, " "));
        }
      },
    );
  }, []);

  // Every API error passes here: a refused key ends the session at once (no stale rows under
  // an error); a wrong clock or a lost network is shown once for the whole page.
  useEffect(
    () =>
      onApiError((e) => {
        const current = sessionRef.current;
        if (!current) return; // a sign-in attempt: the form shows its own error
        if (isKeyRefused(e)) endSession(keyRefusedNotice(current.creds.accessKeyId));
        else if (isSessionWide(e)) setBanner(e);
      }),
    [],
  );

  // Idle sign-out: any click or key press counts as activity.
  useEffect(() => {
    if (!session) return;
    const idleMs = (session.me.consoleIdleSeconds ?? kDefaultIdleSeconds) * 1000;
    // Measured on the monotonic clock: setting the computer's clock does not end a session.
    // The wall-clock time is kept only for a reload of the tab (loadLastActivity).
    let last = performance.now();
    saveLastActivity(Date.now());
    const touch = () => {
      last = performance.now();
      saveLastActivity(Date.now());
    };
    const timer = window.setInterval(() => {
      if (performance.now() - last > idleMs)
        endSession(`Signed out after ${idleWords(idleMs / 1000)} without activity. Sign in again to go on.`);
    }, Math.min(5000, Math.max(250, idleMs / 20)));
    for (const t of ["pointerdown", "keydown", "wheel"]) document.addEventListener(t, touch, { capture: true, passive: true });
    return () => {
      window.clearInterval(timer);
      for (const t of ["pointerdown", "keydown", "wheel"]) document.removeEventListener(t, touch, { capture: true });
    };
  }, [session]);

  // A banner belongs to the page it was raised on.
  useEffect(() => {
    const clear = () => setBanner(undefined);
    window.addEventListener("hashchange", clear);
    return () => window.removeEventListener("hashchange", clear);
  }, []);

  const signIn = async (creds: Credentials) => {
    setNotice(undefined);
    const me = await whoami(creds); // rejects with the server's error on a wrong key
    saveCredentials(creds);
    saveLastActivity(Date.now());
    setBanner(undefined);
    setSession({ creds, me });
  };
  const signOut = () => {
    clearCredentials();
    setSession(null);
    setNotice(undefined);
    location.hash = "";
  };

  if (restoring) return <p class="loading" role="status">Signing in…</p>;
  if (!session) return <SignIn onSignIn={signIn} notice={notice} />;
  return (
    <SessionContext.Provider value={session}>
      <AccountDirectoryProvider>
        {banner ? <SessionBanner error={banner} onDismiss={() => setBanner(undefined)} /> : null}
        <Shell session={session} onSignOut={signOut} />
      </AccountDirectoryProvider>
    </SessionContext.Provider>
  );
}

/** The one notice for an error every request shares (a wrong clock, no network). */
function SessionBanner({ error, onDismiss }: { error: ApiError; onDismiss: () => void }) {
  const { what, todo } = explain(error);
  return (
    <div class="session-banner" role="alert" data-testid="session-banner">
      <p>
        <span class="error-message">{what}</span> {todo} <span class="error-code">({error.code})</span>
      </p>
      <button type="button" class="secondary" onClick={onDismiss}>
        Dismiss
      </button>
    </div>
  );
}

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const { path, id, query } = useHashRoute();
  const routes = kRoutes.filter((r) => !r.adminOnly || session.me.isAdmin);
  const route = routes.find((r) => r.path === path && (r.param !== undefined || id === ""));
  const navRoutes = routes.filter((r) => !r.param);
  const current = route?.param ? routes.find((r) => r.path === route.param!.listPath) : route;
  const groups = [...new Set(navRoutes.map((r) => r.group))];
  const main = useRef<HTMLElement>(null);
  useEffect(() => {
    document.title = `${route?.title ?? "Not found"} · snapvol console`;
  }, [route]);
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); main.current?.focus(); }}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">snapvol console</span>
        <nav aria-label="Pages">
          {groups.map((g, gi) => (
            <div class="nav-group" key={g}>
              <h2 class="nav-heading" id={`nav-group-${gi}`}>
                {g}
              </h2>
              <ul aria-labelledby={`nav-group-${gi}`}>
                {navRoutes
                  .filter((r) => r.group === g)
                  .map((r) => (
                    <li key={r.path}>
                      <a href={`#/${r.path}`} aria-current={r === current ? "page" : undefined}>
                        {r.title}
                      </a>
                    </li>
                  ))}
              </ul>
            </div>
          ))}
        </nav>
        <TimeZoneSetting />
        <div class="whoami">
          <span data-testid="whoami">
            {session.me.alias} ({session.me.accountId}){session.me.isAdmin ? " · administrator" : ""}
          </span>
          <button type="button" class="secondary" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {route ? (
          <route.page key={`${route.path}/${id}`} query={query} id={id} />
        ) : (
          <>
            <h1>Not found</h1>
            <p>There is no page “{path}” here.</p>
          </>
        )}
      </main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
