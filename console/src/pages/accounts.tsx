// Administrators: accounts (teams) and their access keys. A new key's secret is shown once.
// Keys can be disabled (refused everywhere until enabled again), enabled and deleted; delete
// asks first, and so does anything done to the key this console is signed in with. The
// server refuses the last active key of an administrator account by name, and the dialog or
// the key's row says so.

import { useState } from "preact/hooks";

import {
  createAccessKey,
  createAccount,
  deleteAccessKey,
  getUsage,
  listAccounts,
  setAccessKeyActive,
  type AccessKeySummary,
  type Account,
  type AccountUsage,
  type NewAccessKey,
} from "../api/snapvol";
import { useSession } from "../context";
import { DialogActions, ErrorNote, Modal, Time, useAction, useLoader } from "../ui";
import { ByteSize } from "./details_common";

type KeyChange = "disable" | "enable" | "delete";

interface PendingChange {
  account: Account;
  key: AccessKeySummary;
  change: KeyChange;
}

/** An account's stored bytes: held alone, and shared with other accounts' snapshots. */
function AccountStorage({ usage, loading }: { usage: AccountUsage | undefined; loading: boolean }) {
  if (!usage) return loading ? <span role="status">Loading…</span> : <span class="muted">—</span>;
  return (
    <>
      <ByteSize bytes={usage.exclusiveBytes} /> own
      {usage.sharedBytes > 0 ? (
        <div class="sub">
          <ByteSize bytes={usage.sharedBytes} /> shared
        </div>
      ) : null}
      <div class="sub">
        {usage.snapshots} snapshot{usage.snapshots === 1 ? "" : "s"}
      </div>
    </>
  );
}

export function AccountsPage() {
  const { creds } = useSession();
  const accounts = useLoader(() => listAccounts(creds), [creds]);
  const usage = useLoader(() => getUsage(creds), [creds]);
  const usageOf = (id: string) => usage.data?.accounts.find((u) => u.accountId === id);
  const [alias, setAlias] = useState("");
  const [newKey, setNewKey] = useState<{ account: Account; key: NewAccessKey } | null>(null);
  const create = useAction();
  const keyAct = useAction();
  const [keyFor, setKeyFor] = useState("");
  const change = useAction();
  const [changeFor, setChangeFor] = useState("");
  const [confirm, setConfirm] = useState<PendingChange | null>(null);
  const [done, setDone] = useState("");

  const submit = async (e: Event) => {
    e.preventDefault();
    const a = await create.run(() => createAccount(creds, alias.trim()));
    if (a) {
      setAlias("");
      accounts.reload();
    }
  };
  const addKey = async (a: Account) => {
    setKeyFor(a.accountId);
    const k = await keyAct.run(() => createAccessKey(creds, a.accountId));
    if (k) {
      setNewKey({ account: a, key: k });
      accounts.reload();
    }
  };

  const own = (k: AccessKeySummary) => k.accessKeyId === creds.accessKeyId;
  /** Runs a change; a change to one's own key or a delete asks first (confirm). */
  const apply = async (p: PendingChange) => {
    setChangeFor(p.key.accessKeyId);
    setDone("");
    const ok = await change.run(async () => {
      if (p.change === "delete") await deleteAccessKey(creds, p.key.accessKeyId);
      else await setAccessKeyActive(creds, p.key.accessKeyId, p.change === "enable");
      return true;
    });
    if (!ok) return false;
    const verb = p.change === "delete" ? "Deleted" : p.change === "enable" ? "Enabled" : "Disabled";
    setDone(`${verb} access key ${p.key.accessKeyId} of ${p.account.alias}.`);
    setConfirm(null);
    accounts.reload(); // on one's own key this request is refused, and the console signs out
    return true;
  };
  const ask = (p: PendingChange) => {
    if (p.change === "delete" || own(p.key)) {
      change.clear();
      setConfirm(p);
    } else void apply(p);
  };

  return (
    <section aria-labelledby="accounts-title">
      <div class="page-head">
        <h1 id="accounts-title">Accounts and keys</h1>
        <button type="button" class="secondary" onClick={accounts.reload}>
          Refresh
        </button>
      </div>
      <form class="inline-form" onSubmit={submit} aria-label="Create an account">
        <label>
          <span>New account alias</span>
          <input name="alias" required maxLength={63} value={alias} onInput={(e) => setAlias(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={create.busy}>
          {create.busy ? "Creating…" : "Create account"}
        </button>
      </form>
      {done ? (
        <p class="notice" role="status" data-testid="key-change-done">
          {done}
        </p>
      ) : null}
      <ErrorNote error={create.error} />
      <ErrorNote error={accounts.error} />
      <ErrorNote error={usage.error} />
      {usage.data ? (
        <p class="hint" data-testid="usage-summary">
          The store holds <ByteSize bytes={usage.data.storedBytes ?? 0} /> for every account’s snapshots
          {usage.data.pendingChanges > 0 ? ` (${usage.data.pendingChanges} recent changes still being counted)` : ""}. An
          account’s own bytes are what only its snapshots reference; shared bytes are also referenced by another account’s.
        </p>
      ) : null}
      {accounts.loading && !accounts.data ? <p role="status">Loading accounts…</p> : null}
      {accounts.data ? (
        <table class="list" aria-label="Accounts">
          <thead>
            <tr>
              <th scope="col">Alias</th>
              <th scope="col">Account</th>
              <th scope="col">Role</th>
              <th scope="col">Created</th>
              <th scope="col">Snapshot storage</th>
              <th scope="col">Access keys</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {accounts.data.map((a) => (
              <tr key={a.accountId} data-account-id={a.accountId}>
                <td data-label="Alias">{a.alias}</td>
                <td data-label="Account">
                  <code>{a.accountId}</code>
                </td>
                <td data-label="Role">{a.isAdmin ? "administrator" : "member"}</td>
                <td data-label="Created">
                  <Time iso={a.createdAt} />
                </td>
                <td data-label="Snapshot storage" data-testid="account-usage">
                  <AccountStorage usage={usageOf(a.accountId)} loading={usage.loading} />
                </td>
                <td data-label="Access keys">
                  {a.accessKeys.length === 0 ? <span class="muted">none</span> : null}
                  <ul class="plain">
                    {a.accessKeys.map((k) => {
                      const active = k.status !== "Inactive";
                      return (
                        <li key={k.accessKeyId} class="key-item" data-access-key-id={k.accessKeyId}>
                          <div class="key-line">
                            <code>{k.accessKeyId}</code>{" "}
                            <span class={`state ${active ? "state-active" : "state-disabled"}`}>{active ? "Active" : "Disabled"}</span>
                            {own(k) ? <span class="badge">this session</span> : null}
                          </div>
                          <div class="sub">
                            created <Time iso={k.createdAt} />
                            {k.statusChangedAt ? (
                              <>
                                {" "}
                                · {active ? "enabled" : "disabled"} <Time iso={k.statusChangedAt} />
                              </>
                            ) : null}
                          </div>
                          <div class="key-actions">
                            <button
                              type="button"
                              class="secondary"
                              disabled={change.busy}
                              aria-label={`${active ? "Disable" : "Enable"} access key ${k.accessKeyId}`}
                              onClick={() => ask({ account: a, key: k, change: active ? "disable" : "enable" })}
                            >
                              {active ? "Disable" : "Enable"}
                            </button>
                            <button
                              type="button"
                              class="danger"
                              disabled={change.busy}
                              aria-label={`Delete access key ${k.accessKeyId}`}
                              onClick={() => ask({ account: a, key: k, change: "delete" })}
                            >
                              Delete
                            </button>
                          </div>
                          {!confirm && changeFor === k.accessKeyId ? <ErrorNote error={change.error} /> : null}
                        </li>
                      );
                    })}
                  </ul>
                </td>
                <td data-label="Actions">
                  <button type="button" class="secondary" disabled={keyAct.busy} onClick={() => addKey(a)} aria-label={`Create access key for ${a.alias}`}>
                    Create access key
                  </button>
                  {keyFor === a.accountId ? <ErrorNote error={keyAct.error} /> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {confirm ? (
        <Modal
          title={`${confirm.change === "delete" ? "Delete" : confirm.change === "disable" ? "Disable" : "Enable"} access key ${confirm.key.accessKeyId}?`}
          onClose={() => setConfirm(null)}
          busy={change.busy}
        >
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void apply(confirm);
            }}
          >
            {confirm.change === "delete" ? (
              <p>
                The key of <strong>{confirm.account.alias}</strong> is removed for good: every program that signs with it is refused from
                now on, and it cannot be enabled again. Disable it instead to keep that choice.
              </p>
            ) : confirm.change === "disable" ? (
              <p>Every request signed with this key is refused until it is enabled again.</p>
            ) : (
              <p>Requests signed with this key are accepted again.</p>
            )}
            {own(confirm.key) && confirm.change !== "enable" ? (
              <p class="warning" data-testid="own-key-warning">
                <strong>This is the key this console is signed in with.</strong> You will be signed out at once and need another
                active key to sign in again.
              </p>
            ) : null}
            <DialogActions
              act={change}
              label={confirm.change === "delete" ? "Delete key" : confirm.change === "disable" ? "Disable key" : "Enable key"}
              busyLabel={confirm.change === "delete" ? "Deleting…" : "Saving…"}
              onCancel={() => setConfirm(null)}
              danger={confirm.change !== "enable"}
              cancelFirst
            />
          </form>
        </Modal>
      ) : null}
      {newKey ? (
        <Modal title={`New access key for ${newKey.account.alias}`} onClose={() => setNewKey(null)}>
          <p>
            <strong>The secret is shown only now.</strong> Copy it somewhere safe before closing this window.
          </p>
          <dl class="key">
            <dt>Access key ID</dt>
            <dd>
              <code data-testid="new-access-key-id">{newKey.key.accessKeyId}</code>
            </dd>
            <dt>Secret access key</dt>
            <dd>
              <code data-testid="new-secret-access-key">{newKey.key.secretAccessKey}</code>
            </dd>
          </dl>
          <div class="buttons">
            <button type="button" onClick={() => setNewKey(null)}>
              I have saved it
            </button>
          </div>
        </Modal>
      ) : null}
    </section>
  );
}
