// The signed-in user's key, kept in sessionStorage only: it lives as long as the tab, is never
// written to localStorage or a cookie, and sign-out removes it.

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

const kKey = "snapvol.console.credentials";

export function loadCredentials(): Credentials | null {
  const raw = sessionStorage.getItem(kKey);
  if (!raw) return null;
  try {
    const c = JSON.parse(raw) as Partial<Credentials>;
    if (typeof c.accessKeyId === "string" && typeof c.secretAccessKey === "string" && typeof c.region === "string")
      return { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, region: c.region };
  } catch {
    // fall through: a damaged entry is dropped
  }
  sessionStorage.removeItem(kKey);
  return null;
}

export function saveCredentials(c: Credentials): void {
  sessionStorage.setItem(kKey, JSON.stringify(c));
}

/** Sign-out: forget everything this console put in the tab's storage. */
export function clearCredentials(): void {
  sessionStorage.clear();
}

const kActivity = "snapvol.console.lastActivity";

/** When the user last clicked or typed in this tab (ms since the epoch), so that a reload
 *  does not restart the idle timer; undefined when not recorded. */
export function loadLastActivity(): number | undefined {
  const n = Number(sessionStorage.getItem(kActivity));
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

export function saveLastActivity(ms: number): void {
  sessionStorage.setItem(kActivity, String(ms));
}
