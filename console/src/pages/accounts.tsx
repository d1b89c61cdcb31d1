// Administrators: accounts (teams) and their access keys. A new key's secret is shown once.

import { useState } from "preact/hooks";

import { createAccessKey, createAccount, listAccounts, type Account, type NewAccessKey } from "../api/snapvol";
import { useSession } from "../context";
import { ErrorNote, Modal, Time, useAction, useLoader } from "../ui";

export function AccountsPage() {
  const { creds } = useSession();
  const accounts = useLoader(() => listAccounts(creds), [creds]);
  const [alias, setAlias] = useState("");
  const [newKey, setNewKey] = useState<{ account: Account; key: NewAccessKey } | null>(null);
  const create = useAction();
  const keyAct = useAction();
  const [keyFor, setKeyFor] = useState("");

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
      <ErrorNote error={create.error} />
      <ErrorNote error={accounts.error} />
      {accounts.loading && !accounts.data ? <p role="status">Loading accounts…</p> : null}
      {accounts.data ? (
        <table class="list" aria-label="Accounts">
          <thead>
            <tr>
              <th scope="col">Alias</th>
              <th scope="col">Account</th>
              <th scope="col">Role</th>
              <th scope="col">Created</th>
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
                <td data-label="Access keys">
                  {a.accessKeys.length === 0 ? <span class="muted">none</span> : null}
                  <ul class="plain">
                    {a.accessKeys.map((k) => (
                      <li key={k.accessKeyId}>
                        <code>{k.accessKeyId}</code>
                        <div class="sub">
                          <Time iso={k.createdAt} />
                        </div>
                      </li>
                    ))}
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
