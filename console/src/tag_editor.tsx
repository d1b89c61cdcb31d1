// The one tag editor of the console (create snapshot, create snapshots of an instance, edit a
// snapshot's tags): rows of key and value with character counters and each row's errors
// inline (length, reserved prefix, a key used twice), "Add Tag" that adds one empty row and
// moves focus to its key, "Remove" that moves focus to the neighbouring row (or to Add Tag),
// and one-click suggestions (e.g. Owner = the account's alias) that fill or add a row.
// It keeps every row as typed: no trimming, no dropping of empty values.

import { useLayoutEffect, useRef, useState } from "preact/hooks";

import type { Tag } from "./api/ec2";
import { FieldFoot, useFocusFirstInvalid } from "./fields";
import {
  countTagProblems,
  kAwsPrefix,
  kMaxDescriptionChars,
  kMaxTagKeyChars,
  kMaxTagValueChars,
  kMaxTagsPerResource,
  lengthError,
  validateTags,
  type TagErrors,
} from "./limits";

export interface TagRow extends Tag {
  /** Stable across edits, so that a removed row takes its inputs (and focus) with it. */
  id: number;
}

let nextRowId = 0;
export function tagRow(key = "", value = ""): TagRow {
  nextRowId += 1;
  return { id: nextRowId, key, value };
}

export function tagRows(tags: Tag[]): TagRow[] {
  return tags.map((t) => tagRow(t.key, t.value));
}

export function rowsToTags(rows: TagRow[]): Tag[] {
  return rows.map(({ key, value }) => ({ key, value }));
}

type FocusTarget = { rowId: number; field: "key" | "value" } | { add: true };

/** What turns `current` into `rows`: the tags whose key is gone, and the tags whose key is new
 *  or takes another value (CreateTags overwrites a key's value). */
export function tagChanges(current: Tag[], rows: Tag[]): { removed: Tag[]; changed: Tag[] } {
  const wanted = new Map<string, string>(rows.map((t) => [t.key, t.value]));
  const removed = current.filter((t) => !wanted.has(t.key));
  const changed = [...wanted].filter(([k, v]) => current.find((t) => t.key === k)?.value !== v).map(([key, value]) => ({ key, value }));
  return { removed, changed };
}

export function TagEditor(props: {
  rows: TagRow[];
  onChange: (rows: TagRow[]) => void;
  /** From validateTags(rows, maxTags), computed by the form that also refuses to submit on them. */
  errors: TagErrors;
  /** Show "enter a key" on rows whose key is empty (set once a submit was tried). */
  showAll: boolean;
  maxTags?: number;
  /** Offered as one-click buttons while no row holds exactly this key and value. */
  suggestions?: Tag[];
}) {
  const { rows, errors } = props;
  const maxTags = props.maxTags ?? kMaxTagsPerResource;
  const idBase = useRef(`tags-${Math.random().toString(36).slice(2, 8)}`).current;
  const [focus, setFocus] = useState<FocusTarget | null>(null);
  const inputs = useRef(new Map<string, HTMLInputElement>());
  const addButton = useRef<HTMLButtonElement>(null);

  // In the commit that renders the new row: an effect runs a frame later, and a person who has
  // already clicked (or a test that has already filled) another field would lose focus to it.
  useLayoutEffect(() => {
    if (!focus) return;
    if ("add" in focus) addButton.current?.focus();
    else inputs.current.get(`${focus.rowId}-${focus.field}`)?.focus();
    setFocus(null);
  }, [focus]);

  const bind = (name: string) => (el: HTMLInputElement | null) => {
    if (el) inputs.current.set(name, el);
    else inputs.current.delete(name);
  };
  const set = (id: number, field: "key" | "value", v: string) =>
    props.onChange(rows.map((r) => (r.id === id ? { ...r, [field]: v } : r)));
  const add = () => {
    const row = tagRow();
    props.onChange([...rows, row]);
    setFocus({ rowId: row.id, field: "key" });
  };
  const remove = (i: number) => {
    const next = rows[i + 1] ?? rows[i - 1];
    props.onChange(rows.filter((_, j) => j !== i));
    setFocus(next ? { rowId: next.id, field: "key" } : { add: true });
  };
  const suggest = (s: Tag) => {
    const sameKey = rows.find((r) => r.key === s.key);
    const blank = rows.find((r) => r.key === "" && r.value === "");
    const target = sameKey ?? blank;
    if (target) {
      props.onChange(rows.map((r) => (r.id === target.id ? { ...r, key: s.key, value: s.value } : r)));
      setFocus({ rowId: target.id, field: "value" });
    } else {
      const row = tagRow(s.key, s.value);
      props.onChange([...rows, row]);
      setFocus({ rowId: row.id, field: "value" });
    }
  };
  const offered = (props.suggestions ?? []).filter((s) => !rows.some((r) => r.key === s.key && r.value === s.value));
  const countId = `${idBase}-count`;
  const listErrorId = `${idBase}-list-error`;
  const hintId = `${idBase}-hint`;

  return (
    <fieldset class="tag-editor" aria-describedby={`${hintId} ${countId} ${listErrorId}`}>
      <legend>Tags</legend>
      <p class="hint" id={hintId}>
        Key 1–{kMaxTagKeyChars} characters, value 0–{kMaxTagValueChars} (an empty value is kept); each key once; keys
        starting with <code>{kAwsPrefix}</code> are reserved.
      </p>
      {rows.map((r, i) => {
        const e = errors.rows[i] ?? {};
        // An empty key is shown only after a submit was tried: shown on blur, its message would
        // move the buttons below while the pointer is on its way to them (Remove, a suggestion).
        const keyError = e.key && (r.key !== "" || props.showAll) ? e.key : undefined;
        const keyId = `${idBase}-${r.id}-key`;
        const valueId = `${idBase}-${r.id}-value`;
        return (
          <div class="tag-row" key={r.id} role="group" aria-label={`Tag ${i + 1}`} data-tag-row={i + 1}>
            <div class={keyError ? "field invalid" : "field"}>
              <label for={keyId}>Tag {i + 1} key</label>
              <input
                id={keyId}
                ref={bind(`${r.id}-key`)}
                value={r.key}
                aria-invalid={keyError ? "true" : undefined}
                aria-describedby={`${keyId}-error ${keyId}-count`}
                onInput={(ev) => set(r.id, "key", ev.currentTarget.value)}
              />
              <FieldFoot errorId={`${keyId}-error`} error={keyError} counterId={`${keyId}-count`} value={r.key} max={kMaxTagKeyChars} />
            </div>
            <div class={e.value ? "field invalid" : "field"}>
              <label for={valueId}>Tag {i + 1} value</label>
              <input
                id={valueId}
                ref={bind(`${r.id}-value`)}
                value={r.value}
                aria-invalid={e.value ? "true" : undefined}
                aria-describedby={`${valueId}-error ${valueId}-count`}
                onInput={(ev) => set(r.id, "value", ev.currentTarget.value)}
              />
              <FieldFoot errorId={`${valueId}-error`} error={e.value} counterId={`${valueId}-count`} value={r.value} max={kMaxTagValueChars} />
            </div>
            <button type="button" class="secondary" aria-label={`Remove tag ${i + 1}`} onClick={() => remove(i)}>
              Remove
            </button>
          </div>
        );
      })}
      {rows.length === 0 ? <p class="muted">No tags.</p> : null}
      <div class="tag-tools">
        <button type="button" class="secondary" ref={addButton} onClick={add}>
          Add Tag
        </button>
        {offered.map((s) => (
          <button
            type="button"
            class="suggestion"
            key={`${s.key}=${s.value}`}
            aria-label={`Use tag ${s.key} = ${s.value}`}
            onClick={() => suggest(s)}
          >
            + {s.key} = {s.value}
          </button>
        ))}
        <span id={countId} class={rows.length > maxTags ? "counter over" : "counter"}>
          {rows.length} of {maxTags} tags
        </span>
      </div>
      <p id={listErrorId} class="field-error">
        {errors.list ?? ""}
      </p>
    </fieldset>
  );
}

/** State of a form with a description and tags: both checked on every render, and `check`
 *  (call it first in submit) refuses to send while anything is wrong, marking every problem
 *  and moving focus to the first. */
export function useDescribedTagsForm(opts: { description?: string; tags?: Tag[]; maxTags?: number }) {
  const [description, setDescription] = useState(opts.description ?? "");
  const [rows, setRows] = useState<TagRow[]>(() => tagRows(opts.tags ?? []));
  const [tried, setTried] = useState(false);
  const focusFirstInvalid = useFocusFirstInvalid();
  const tagErrors = validateTags(rowsToTags(rows), opts.maxTags);
  const descriptionError = lengthError("The description", description, kMaxDescriptionChars);
  const problems = countTagProblems(tagErrors) + (descriptionError ? 1 : 0);
  const check = (form: HTMLFormElement | null): boolean => {
    setTried(true);
    if (problems === 0) return true;
    focusFirstInvalid(form);
    return false;
  };
  return { description, setDescription, descriptionError, rows, setRows, tagErrors, tried, problems, check };
}
