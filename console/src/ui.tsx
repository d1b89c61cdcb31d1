// Small building blocks shared by the pages: loading state, errors in words, dialogs,
// tags, times and states.

import { createContext, type ComponentChildren } from "preact";
import { useCallback, useContext, useEffect, useRef, useState } from "preact/hooks";

import { ApiError, asApiError, explain, isSessionWide } from "./api/errors";
import type { Tag } from "./api/ec2";

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  /** Loads again; the current data stays on screen until the new answer replaces it. */
  reload: () => void;
}

/** Runs `load` when `deps` change (and on reload()); answers that arrive after a newer load
 *  started are dropped, so the screen always shows the latest request's result. */
export function useLoader<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const seq = useRef(0);
  useEffect(() => {
    const mine = ++seq.current;
    setLoading(true);
    load().then(
      (d) => {
        if (mine !== seq.current) return;
        setData(d);
        setError(undefined);
        setLoading(false);
      },
      (e) => {
        if (mine !== seq.current) return;
        setError(asApiError(e));
        setLoading(false);
      },
    );
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload };
}

/** Loads `loaded` again `ms` after each load ends, for as long as `active` holds (a pending
 *  snapshot's progress, a volume being created): never more than one load in flight. */
export function useReloadWhile<T>(loaded: Loaded<T>, active: boolean, ms: number) {
  useEffect(() => {
    if (!active || loaded.loading) return;
    const t = window.setTimeout(loaded.reload, ms);
    return () => window.clearTimeout(t);
  }, [active, loaded.loading, loaded.data]);
}

/** Whether an ErrorNote sits inside a dialog (which covers the shell's banner). */
const InDialog = createContext(false);

/** An API error in words: what happened and what to do, in snapvol's words, and the server's
 *  code. Errors every request shares (a refused key, a wrong clock, no network) are shown once
 *  by the shell (SessionBanner), so a page's notes leave them out, except inside a dialog,
 *  which covers the banner; `always` shows them anyway (the sign-in form). */
export function ErrorNote({ error, id, always }: { error: ApiError | undefined; id?: string; always?: boolean }) {
  const inDialog = useContext(InDialog);
  if (!error) return null;
  if (isSessionWide(error) && !inDialog && !always) return null;
  const { what, todo } = explain(error);
  return (
    <p class="error" role="alert" id={id} data-testid="error-note">
      <span class="error-message">{what}</span>
      {todo ? <span class="error-todo"> {todo}</span> : null} <span class="error-code">({error.code})</span>
    </p>
  );
}

/** The end of a dialog: the error of its last attempt, the action button (its label while
 *  busy) and Cancel. The action submits the dialog's form unless `onAction` is given. */
export function DialogActions(props: {
  act: { busy: boolean; error: ApiError | undefined };
  label: string;
  busyLabel: string;
  onCancel: () => void;
  onAction?: () => void;
  danger?: boolean;
  cancelFirst?: boolean;
}) {
  const { act } = props;
  const guardClose = useContext(ModalClose);
  const cancel = () => (guardClose ? guardClose(props.onCancel) : props.onCancel());
  return (
    <>
      <ErrorNote error={act.error} />
      <div class="buttons">
        <button
          type={props.onAction ? "button" : "submit"}
          class={props.danger ? "danger" : undefined}
          disabled={act.busy}
          onClick={props.onAction}
        >
          {act.busy ? props.busyLabel : props.label}
        </button>
        <button type="button" class="secondary" onClick={cancel} autoFocus={props.cancelFirst}>
          Cancel
        </button>
      </div>
    </>
  );
}

/** A list as a table: `loadingText` until the first answer, `empty` when it has no rows,
 *  else a table named `label` with one heading per column and `children` as its rows. */
export function ListTable(props: {
  loading: boolean;
  rows: readonly unknown[] | undefined;
  loadingText: string;
  empty: ComponentChildren;
  label: string;
  columns: string[];
  children: ComponentChildren;
}) {
  return (
    <>
      {props.loading ? <p role="status">{props.loadingText}</p> : null}
      {props.rows && props.rows.length === 0 ? <p class="empty">{props.empty}</p> : null}
      {props.rows && props.rows.length > 0 ? (
        <table class="list" aria-label={props.label}>
          <thead>
            <tr>
              {props.columns.map((c) => (
                <th key={c} scope="col">
                  {c}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>{props.children}</tbody>
        </table>
      ) : null}
    </>
  );
}

/** How a dialog's own Cancel button asks its Modal to close: refused (with a note) while the
 *  dialog's request is running, because closing would look like cancelling it. */
const ModalClose = createContext<((close: () => void) => void) | null>(null);

const kBusyNote = "Still working: the request has been sent and cannot be cancelled. This dialog closes when the server answers.";

/** A modal dialog on the native <dialog> element: focus moves into it, Escape closes it,
 *  and focus returns to what opened it. While `busy` (a request in flight), Escape and
 *  Cancel do not close it: they say the request is still running (`busyNote`). */
export function Modal(props: {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
  wide?: boolean;
  busy?: boolean;
  busyNote?: string;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useRef(`dlg-${Math.random().toString(36).slice(2)}`).current;
  const [closeRefused, setCloseRefused] = useState(false);
  useEffect(() => {
    const opener = document.activeElement as HTMLElement | null;
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => {
      if (d?.open) d.close();
      // Back to what opened it; if a reload replaced that element, to the page's main region.
      if (opener && opener.isConnected) opener.focus();
      else document.getElementById("main")?.focus();
    };
  }, []);
  // WAI-ARIA's dialog pattern: Tab and Shift+Tab cycle inside the dialog (showModal makes the
  // page inert, but Tab would still leave for the browser's own controls).
  const trapTab = (e: KeyboardEvent) => {
    const d = ref.current;
    if (e.key !== "Tab" || !d) return;
    const focusable = [...d.querySelectorAll<HTMLElement>("button, [href], input, select, textarea, summary, [tabindex]:not([tabindex='-1'])")].filter(
      (el) => !(el as HTMLButtonElement).disabled && el.offsetParent !== null,
    );
    if (focusable.length === 0) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (e.shiftKey && (document.activeElement === first || !d.contains(document.activeElement))) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  };
  useEffect(() => {
    if (!props.busy) setCloseRefused(false);
  }, [props.busy]);
  const guardClose = (close: () => void) => {
    if (props.busy) setCloseRefused(true);
    else close();
  };
  return (
    <dialog
      ref={ref}
      class={props.wide ? "wide" : undefined}
      aria-labelledby={titleId}
      aria-busy={props.busy ? "true" : undefined}
      onCancel={(e) => {
        e.preventDefault();
        guardClose(props.onClose);
      }}
      onKeyDown={trapTab}
    >
      <h2 id={titleId}>{props.title}</h2>
      <InDialog.Provider value={true}>
        <ModalClose.Provider value={guardClose}>{props.children}</ModalClose.Provider>
      </InDialog.Provider>
      <p class="busy-note" role="status" data-testid="busy-note">
        {props.busy && closeRefused ? props.busyNote ?? kBusyNote : ""}
      </p>
    </dialog>
  );
}

export function TagList({ tags }: { tags: Tag[] }) {
  if (tags.length === 0) return <span class="muted">none</span>;
  return (
    <ul class="tags">
      {tags.map((t) => (
        <li key={t.key}>
          <span class="tag-key">{t.key}</span>=<span class="tag-value">{t.value}</span>
        </li>
      ))}
    </ul>
  );
}

/** The tags snapvol sets itself (aws:…), shown apart from the editable ones; nothing when there are none. */
export function SystemTags({ tags }: { tags: Tag[] }) {
  if (tags.length === 0) return null;
  return (
    <div class="system-tags">
      <p class="hint">Set by snapvol (not editable):</p>
      <TagList tags={tags} />
    </div>
  );
}

/** Times: local (or UTC, a setting) with the other zone on hover; see time.tsx. */
export { Time } from "./time";

export function StateBadge({ state }: { state: string }) {
  return <span class={`state state-${state.replace(/[^a-z-]/g, "")}`}>{state}</span>;
}

export function Progress({ value, label }: { value: string; label: string }) {
  const n = Math.max(0, Math.min(100, parseInt(value || "0", 10) || 0));
  return (
    <span class="progress">
      <progress max={100} value={n} aria-label={label} />
      <span class="progress-text">{n}%</span>
    </span>
  );
}

export function gib(n: number): string {
  return `${n} GiB`;
}

/** A submit handler that runs `action`, shows its error next to the form, and reports
 *  whether it is still running. */
export function useAction(): {
  busy: boolean;
  error: ApiError | undefined;
  run: <T>(action: () => Promise<T>) => Promise<T | undefined>;
  fail: (e: ApiError) => void;
  clear: () => void;
} {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const run = useCallback(async <T,>(action: () => Promise<T>) => {
    setBusy(true);
    setError(undefined);
    try {
      return await action();
    } catch (e) {
      setError(asApiError(e));
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, fail: setError, clear: () => setError(undefined) };
}
