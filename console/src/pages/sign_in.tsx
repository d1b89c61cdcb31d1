// Sign-in with an access key and secret. The key is checked by asking the server who it
// belongs to (a signed GET /api/v1/whoami); a refusal is shown in snapvol's words with the
// server's code. `notice` says why an earlier session ended (a refused key, idle time) until
// the next attempt.

import { useState } from "preact/hooks";

import type { Credentials } from "../api/session";
import { ErrorNote, useAction } from "../ui";

export function SignIn({ onSignIn, notice }: { onSignIn: (c: Credentials) => Promise<void>; notice?: string }) {
  const [accessKeyId, setAccessKeyId] = useState("");
  const [secretAccessKey, setSecret] = useState("");
  const [region, setRegion] = useState("us-east-1");
  const act = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    void act.run(() => onSignIn({ accessKeyId: accessKeyId.trim(), secretAccessKey, region: region.trim() }));
  };
  return (
    <main class="sign-in" id="main">
      <h1>Sign in to snapvol</h1>
      {notice && !act.error ? (
        <p class="session-ended" role="alert" data-testid="session-ended">
          {notice}
        </p>
      ) : null}
      <form onSubmit={submit} aria-describedby={act.error ? "sign-in-error" : undefined}>
        <label>
          <span>Access key ID</span>
          <input
            name="accessKeyId"
            autoComplete="username"
            required
            value={accessKeyId}
            onInput={(e) => setAccessKeyId(e.currentTarget.value)}
          />
        </label>
        <label>
          <span>Secret access key</span>
          <input
            name="secretAccessKey"
            type="password"
            autoComplete="current-password"
            required
            value={secretAccessKey}
            onInput={(e) => setSecret(e.currentTarget.value)}
          />
        </label>
        <details>
          <summary>Region</summary>
          <label>
            <span>Region the service signs for</span>
            <input name="region" required value={region} onInput={(e) => setRegion(e.currentTarget.value)} />
          </label>
        </details>
        <ErrorNote error={act.error} id="sign-in-error" always />
        <button type="submit" disabled={act.busy}>
          {act.busy ? "Signing in…" : "Sign in"}
        </button>
        <p class="hint">The key is kept in this tab's session storage only and is removed when you sign out.</p>
      </form>
    </main>
  );
}
