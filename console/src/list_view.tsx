// What the Snapshots, Volumes and Restore requests lists share: sortable column headers
// (aria-sort), a search box that matches exactly the fields a page says it searches, row
// selection, long values truncated with the whole value on hover, a copy button for ids, and
// the administrators' account switcher. Each row's actions menu is row_menu.tsx.

import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";

import { useAccountDirectory } from "./account_names";
import { useSession } from "./context";

export type SortDir = "ascending" | "descending";
export type SortValue = string | number;

export interface Column<T> {
  id: string;
  label: string;
  /** What sorting by this column compares; a column without it is not sortable. */
  sort?: (row: T) => SortValue;
  render: (row: T) => ComponentChildren;
  class?: string;
}

export interface SortState {
  column: string;
  dir: SortDir;
}

/** The sort order of a list: `initial` first (newest first, for the lists here); a click on the
 *  sorted column's header reverses it, on another column sorts by it ascending (dates and sizes
 *  descending, so the first click shows the newest and largest). */
export function useSort(initial: SortState, descendingFirst: string[] = []) {
  const [sort, setSort] = useState<SortState>(initial);
  const toggle = (column: string) =>
    setSort((s) =>
      s.column === column
        ? { column, dir: s.dir === "ascending" ? "descending" : "ascending" }
        : { column, dir: descendingFirst.includes(column) ? "descending" : "ascending" },
    );
  return { sort, setSort, toggle };
}

function compare(a: SortValue, b: SortValue): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true, sensitivity: "base" });
}

/** `rows` in `sort`'s order; ties keep the order of `key` (so equal dates never shuffle). */
export function sortRows<T>(rows: readonly T[], columns: Column<T>[], sort: SortState, key: (row: T) => string): T[] {
  const col = columns.find((c) => c.id === sort.column);
  if (!col?.sort) return [...rows];
  const by = col.sort;
  const sign = sort.dir === "ascending" ? 1 : -1;
  return [...rows].sort((a, b) => sign * compare(by(a), by(b)) || compare(key(a), key(b)));
}

/** Time of an ISO-8601 string for sorting; an empty or unreadable one sorts as the oldest. */
export function timeValue(iso: string | undefined): number {
  const t = iso ? Date.parse(iso) : NaN;
  return isNaN(t) ? -Infinity : t;
}

/** Whether `query` (as typed, compared without regard to case) is a part of any of `fields`.
 *  An empty query matches everything. */
export function matchesSearch(query: string, fields: readonly string[]): boolean {
  if (query === "") return true;
  const q = query.toLowerCase();
  return fields.some((f) => f.toLowerCase().includes(q));
}

/** The search box: `hint` says which fields of which rows it searches. */
export function SearchBox(props: { id: string; label: string; value: string; onInput: (v: string) => void; hint: string; shown: number; total: number }) {
  return (
    <div class="list-search">
      <label>
        <span>{props.label}</span>
        <input
          type="search"
          id={props.id}
          value={props.value}
          onInput={(e) => props.onInput(e.currentTarget.value)}
          aria-describedby={`${props.id}-hint`}
          autoComplete="off"
        />
      </label>
      <p class="hint" id={`${props.id}-hint`}>
        {props.hint}
      </p>
      <p class="hint list-count" role="status" data-testid="search-count">
        {props.value === "" ? `${props.total} in the list` : `${props.shown} of ${props.total} match “${props.value}”`}
      </p>
    </div>
  );
}

/** Row selection by key; `prune` keeps only keys still shown, so what is acted on is what is checked on screen. */
export function useSelection() {
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const toggle = (key: string, on: boolean) =>
    setSelected((s) => {
      const n = new Set(s);
      if (on) n.add(key);
      else n.delete(key);
      return n;
    });
  const setAll = (keys: string[], on: boolean) => setSelected(on ? new Set(keys) : new Set());
  const prune = (shown: string[]) =>
    setSelected((s) => {
      const keep = [...s].filter((k) => shown.includes(k));
      return keep.length === s.size ? s : new Set(keep);
    });
  return { selected, toggle, setAll, prune, clear: () => setSelected(new Set()) };
}

/** A table with sortable headers. `select` adds a checkbox per row. */
export function DataTable<T>(props: {
  label: string;
  columns: Column<T>[];
  rows: T[];
  rowKey: (row: T) => string;
  rowAttrs?: (row: T) => Record<string, string>;
  sort: SortState;
  onSort: (column: string) => void;
  select?: { selected: ReadonlySet<string>; toggle: (key: string, on: boolean) => void; label: (row: T) => string };
}) {
  const { sort } = props;
  return (
    <table class="list lv" aria-label={props.label}>
      <thead>
        <tr>
          {props.select ? (
            <th scope="col" class="lv-select">
              <span class="visually-hidden">Selected</span>
            </th>
          ) : null}
          {props.columns.map((c) => {
            const sorted = sort.column === c.id;
            return (
              <th key={c.id} scope="col" class={c.class} aria-sort={c.sort && sorted ? sort.dir : undefined}>
                {c.sort ? (
                  <button type="button" class="lv-sort" onClick={() => props.onSort(c.id)}>
                    {c.label}
                    <span class="lv-sort-mark" aria-hidden="true">
                      {sorted ? (sort.dir === "ascending" ? "▲" : "▼") : "↕"}
                    </span>
                  </button>
                ) : (
                  c.label
                )}
              </th>
            );
          })}
        </tr>
      </thead>
      <tbody>
        {props.rows.map((r) => {
          const key = props.rowKey(r);
          return (
            <tr key={key} {...(props.rowAttrs?.(r) ?? {})}>
              {props.select ? (
                <td class="lv-select" data-label="Select">
                  <input
                    type="checkbox"
                    checked={props.select.selected.has(key)}
                    onChange={(e) => props.select!.toggle(key, e.currentTarget.checked)}
                    aria-label={props.select.label(r)}
                  />
                </td>
              ) : null}
              {props.columns.map((c) => (
                <td key={c.id} data-label={c.label} class={c.class}>
                  {c.render(r)}
                </td>
              ))}
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/** For narrow screens, where the column headers are hidden: the same sort as a select. */
export function SortSelect<T>(props: { columns: Column<T>[]; sort: SortState; onChange: (s: SortState) => void }) {
  const options = props.columns.filter((c) => c.sort);
  return (
    <label class="inline lv-sort-select">
      <span>Sort by</span>
      <select
        value={`${props.sort.column}:${props.sort.dir}`}
        onChange={(e) => {
          const [column, dir] = e.currentTarget.value.split(":");
          props.onChange({ column, dir: dir as SortDir });
        }}
      >
        {options.flatMap((c) => [
          <option key={`${c.id}-d`} value={`${c.id}:descending`}>
            {c.label} (descending)
          </option>,
          <option key={`${c.id}-a`} value={`${c.id}:ascending`}>
            {c.label} (ascending)
          </option>,
        ])}
      </select>
    </label>
  );
}

/** Text cut to one line with an ellipsis when it does not fit; the whole value on hover. */
export function Truncated({ text, class: cls }: { text: string; class?: string }) {
  return (
    <span class={cls ? `lv-trunc ${cls}` : "lv-trunc"} title={text}>
      {text}
    </span>
  );
}

async function writeClipboard(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Without clipboard permission: copy from a selected, off-screen text field.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
}

/** An id in code with a button that copies it; says "Copied" (or that it could not) for a moment. */
export function CopyableId({ id }: { id: string }) {
  const [said, setSaid] = useState("");
  useEffect(() => {
    if (!said) return;
    const t = window.setTimeout(() => setSaid(""), 2000);
    return () => window.clearTimeout(t);
  }, [said]);
  return (
    <span class="lv-id">
      <code title={id}>{id}</code>
      <button
        type="button"
        class="secondary lv-copy"
        aria-label={`Copy ID ${id}`}
        title="Copy the ID"
        onClick={async () => setSaid((await writeClipboard(id)) ? "Copied" : "Could not copy")}
      >
        Copy
      </button>
      <span class="lv-copied" role="status">
        {said}
      </span>
    </span>
  );
}

/** Administrators' account switcher ("all" or an account id); null for members, who only
 *  ever see their own account. */
export function AccountSwitcher(props: { value: string; onChange: (v: string) => void; id: string }) {
  const { me } = useSession();
  const { accounts } = useAccountDirectory();
  if (!me.isAdmin) return null;
  return (
    <div class="lv-account">
      <label for={props.id}>Account</label>
      <select id={props.id} value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)}>
        <option value="all">All accounts</option>
        {props.value !== "all" && !accounts.some((a) => a.accountId === props.value) ? (
          <option value={props.value}>{props.value}</option>
        ) : null}
        {accounts.map((a) => (
          <option key={a.accountId} value={a.accountId}>
            {a.alias} ({a.accountId})
          </option>
        ))}
      </select>
    </div>
  );
}

const kBinary: [number, string][] = [
  [2 ** 40, "TiB"],
  [2 ** 30, "GiB"],
  [2 ** 20, "MiB"],
  [2 ** 10, "KiB"],
];

/** Exact bytes in words: "16 MiB" when a unit divides it, else e.g. "1.5 GiB (1,610,612,736 bytes)". */
export function bytesText(n: number): string {
  for (const [unit, name] of kBinary) if (n >= unit && n % unit === 0) return `${n / unit} ${name}`;
  for (const [unit, name] of kBinary)
    if (n >= unit) return `${(n / unit).toFixed(2)} ${name} (${n.toLocaleString("en-US")} bytes)`;
  return `${n.toLocaleString("en-US")} bytes`;
}

/** A size EC2 gives only in whole GiB, rounded up: said as an upper bound, not as the size. */
export function GibUpperBound({ gib }: { gib: number }) {
  return (
    <span title="EC2 reports sizes in whole GiB, rounded up; the exact size may be smaller">≤ {gib} GiB</span>
  );
}

/** Tags as chips, each cut to a width with the whole key=value on hover. */
export function TruncatedTags({ tags }: { tags: { key: string; value: string }[] }) {
  if (tags.length === 0) return <span class="muted">none</span>;
  return (
    <ul class="tags lv-tags">
      {tags.map((t) => (
        <li key={t.key} title={`${t.key}=${t.value}`}>
          <span class="tag-key">{t.key}</span>=<span class="tag-value">{t.value}</span>
        </li>
      ))}
    </ul>
  );
}
