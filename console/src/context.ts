// What every page needs: the signed-in key and who it belongs to.

import { createContext } from "preact";
import { useContext } from "preact/hooks";

import type { Credentials } from "./api/session";
import type { Identity } from "./api/snapvol";

export interface Session {
  creds: Credentials;
  me: Identity;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside a signed-in console");
  return s;
}
