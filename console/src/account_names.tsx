// Account names wherever an account id appears: administrators' consoles know every account
// (GET /api/v1/accounts, loaded once per session and shared by every page); a member knows its
// own alias. An id the console cannot name is shown as the id itself, never as a guess.

import { createContext, type ComponentChildren } from "preact";
import { useContext, useEffect, useState } from "preact/hooks";

import { listAccounts, type Account } from "./api/snapvol";
import { useSession } from "./context";

/** Account id → alias, as far as this session knows; `accounts` is every account for an
 *  administrator (empty until loaded, and for members). */
export interface AccountDirectory {
  names: ReadonlyMap<string, string>;
  accounts: readonly Account[];
}

const AccountDirectoryContext = createContext<AccountDirectory>({ names: new Map(), accounts: [] });

/** Loads the directory once for the signed-in session; a failed load leaves ids unnamed. */
export function AccountDirectoryProvider({ children }: { children: ComponentChildren }) {
  const { creds, me } = useSession();
  const [directory, setDirectory] = useState<AccountDirectory>(() => ({
    names: new Map([[me.accountId, me.alias]]),
    accounts: [],
  }));
  useEffect(() => {
    if (!me.isAdmin) return;
    let live = true;
    listAccounts(creds).then(
      (accounts) => {
        if (!live) return;
        const names = new Map(accounts.map((a) => [a.accountId, a.alias] as [string, string]));
        names.set(me.accountId, me.alias);
        setDirectory({ names, accounts });
      },
      () => undefined, // ids stay as they are; the Accounts page shows the error itself
    );
    return () => {
      live = false;
    };
  }, [creds.accessKeyId, me.accountId, me.isAdmin]);
  return <AccountDirectoryContext.Provider value={directory}>{children}</AccountDirectoryContext.Provider>;
}

export function useAccountDirectory(): AccountDirectory {
  return useContext(AccountDirectoryContext);
}

/** The account's alias with its id on hover, or the bare id when the alias is not known. */
export function AccountName({ id }: { id: string | undefined }) {
  const { names } = useAccountDirectory();
  if (!id) return <span class="muted">—</span>;
  const alias = names.get(id);
  if (!alias) return <code>{id}</code>;
  return (
    <span class="account-name" title={id}>
      {alias}
    </span>
  );
}
