// The console's shell: sign-in, navigation between pages (hash routes, so snapvold serves
// one static index.html), and sign-out.

import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

import { AccountDirectoryProvider } from "./account_names";
import { asApiError, type ApiError } from "./api/errors";
import { clearCredentials, loadCredentials, saveCredentials, type Credentials } from "./api/session";
import { whoami } from "./api/snapvol";
import { SessionContext, type Session } from "./context";
import { AccountsPage } from "./pages/accounts";
import { AuditPage } from "./pages/audit";
import { InstancesPage } from "./pages/instances";
import { PoliciesPage } from "./pages/policies";
import { RestoreRequestsPage } from "./pages/restore_requests";
import { SignIn } from "./pages/sign_in";
import { SnapshotDetailsPage } from "./pages/snapshot_details";
import { SnapshotsPage } from "./pages/snapshots";
import { VolumeDetailsPage } from "./pages/volume_details";
import { VolumesPage } from "./pages/volumes";
import { TimeZoneSetting } from "./time";
import { ErrorNote } from "./ui";

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
  { path: "instances", title: "Instances", group: "Instances", page: InstancesPage },
  { path: "accounts", title: "Accounts and keys", group: "Administration", adminOnly: true, page: AccountsPage },
  { path: "audit", title: "Audit log", group: "Administration", adminOnly: true, page: AuditPage },
  { path: "snapshot", title: "Snapshot details", group: "Elastic Block Store", param: { listPath: "snapshots" }, page: SnapshotDetailsPage },
  { path: "volume", title: "Volume details", group: "Elastic Block Store", param: { listPath: "volumes" }, page: VolumeDetailsPage },
];

/** "#/snapshot/snap-1?x=y" → path "snapshot", id "snap-1" (decoded, "" when absent). */
function parseHash(): { path: string; id: string; query: URLSearchParams } {
  const h = location.hash.replace(/^#\/?/, "");
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

function useHashRoute() {
  const [route, setRoute] = useState(parseHash);
  useEffect(() => {
    const on = () => setRoute(parseHash());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}

function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [restoring, setRestoring] = useState<boolean>(() => loadCredentials() !== null);
  const [restoreError, setRestoreError] = useState<ApiError | undefined>(undefined);

  // A reload of the tab keeps the key (sessionStorage) and asks the server who it is again.
  useEffect(() => {
    const creds = loadCredentials();
    if (!creds) return;
    whoami(creds).then(
      (me) => {
        setSession({ creds, me });
        setRestoring(false);
      },
      (e) => {
        clearCredentials();
        setRestoreError(asApiError(e));
        setRestoring(false);
      },
    );
  }, []);

  const signIn = async (creds: Credentials) => {
    const me = await whoami(creds); // rejects with the server's error on a wrong key
    saveCredentials(creds);
    setRestoreError(undefined);
    setSession({ creds, me });
  };
  const signOut = () => {
    clearCredentials();
    setSession(null);
    location.hash = "";
  };

  if (restoring) return <p class="loading" role="status">Signing in…</p>;
  if (!session)
    return (
      <>
        <ErrorNote error={restoreError} />
        <SignIn onSignIn={signIn} />
      </>
    );
  return (
    <SessionContext.Provider value={session}>
      <AccountDirectoryProvider>
        <Shell session={session} onSignOut={signOut} />
      </AccountDirectoryProvider>
    </SessionContext.Provider>
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
