// Text fields that show their limit as a character counter and their error inline while
// typing. They never cut what is typed (no maxlength): a value past the limit stays as typed,
// is marked aria-invalid with the reason beside it, and the form refuses to send it.

import { useLayoutEffect, useState } from "preact/hooks";

import { charCount } from "./limits";

let nextId = 0;
/** A page-unique id for tying a field to its counter and error. */
export function fieldId(prefix: string): string {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/** "12/255" under a field; marked as over when past the limit. */
export function Counter({ id, value, max }: { id: string; value: string; max: number }) {
  const n = charCount(value);
  return (
    <span id={id} class={n > max ? "counter over" : "counter"} data-testid="counter">
      {n}/{max}
      <span class="visually-hidden"> characters</span>
    </span>
  );
}

/** The line under a field: its error (if any) and its counter. */
export function FieldFoot(props: { errorId: string; error: string | undefined; counterId?: string; value?: string; max?: number }) {
  return (
    <div class="field-foot">
      <span id={props.errorId} class="field-error">
        {props.error ?? ""}
      </span>
      {props.counterId !== undefined && props.max !== undefined ? (
        <Counter id={props.counterId} value={props.value ?? ""} max={props.max} />
      ) : null}
    </div>
  );
}

/** A labelled single-line or multi-line text field with a counter of `max` characters and
 *  `error` (computed by the caller from the same limits) shown beneath it. */
export function LimitedText(props: {
  id: string;
  label: string;
  value: string;
  max: number;
  error: string | undefined;
  onInput: (v: string) => void;
  name?: string;
  multiline?: boolean;
  required?: boolean;
}) {
  const errorId = `${props.id}-error`;
  const counterId = `${props.id}-count`;
  const common = {
    id: props.id,
    name: props.name,
    value: props.value,
    required: props.required,
    "aria-invalid": props.error ? ("true" as const) : undefined,
    "aria-describedby": `${errorId} ${counterId}`,
  };
  return (
    <div class={props.error ? "field invalid" : "field"}>
      <label for={props.id}>{props.label}</label>
      {props.multiline ? (
        <textarea {...common} rows={3} onInput={(e) => props.onInput(e.currentTarget.value)} />
      ) : (
        <input {...common} onInput={(e) => props.onInput(e.currentTarget.value)} />
      )}
      <FieldFoot errorId={errorId} error={props.error} counterId={counterId} value={props.value} max={props.max} />
    </div>
  );
}

/** After a refused submit: says that nothing was sent and why, next to the form's buttons. */
export function NotSent({ shown, count }: { shown: boolean; count: number }) {
  if (!shown || count === 0) return null;
  return (
    <p class="error" role="alert" data-testid="not-sent">
      Not sent: {count === 1 ? "1 problem needs" : `${count} problems need`} fixing first (marked above).
    </p>
  );
}

/** After a refused submit: returns `focusFirstInvalid(form)`, which moves focus to the first
 *  field marked invalid in `form`. The move happens in the commit that renders the marks (a
 *  layout effect), not on a timer: a timer fires a task later, after the person (or a test) may
 *  already have moved to another field, and what they type next would land in the wrong one. */
export function useFocusFirstInvalid(): (form: HTMLFormElement | null) => void {
  const [request, setRequest] = useState<{ form: HTMLFormElement | null } | null>(null);
  useLayoutEffect(() => {
    request?.form?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
  }, [request]);
  return (form) => setRequest({ form });
}
