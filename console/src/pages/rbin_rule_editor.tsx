// Create or edit a Recycle Bin retention rule (rbin CreateRule / UpdateRule). Every field
// shows its limit (AWS's, as snapvold checks them) and nothing is cut. Create sends only what
// was filled in; edit sends only what changed. A locked rule's edit is sent all the same: the
// API's refusal (ConflictException) is shown as it came.

import { useRef, useState } from "preact/hooks";

import {
  createRule,
  kMaxExcludeTags,
  kMaxResourceTagKeyChars,
  kMaxResourceTags,
  kMaxResourceTagValueChars,
  kMaxRetentionDays,
  kMaxRuleDescriptionChars,
  kMaxUnlockDelayDays,
  kMinRetentionDays,
  kMinUnlockDelayDays,
  updateRule,
  type ResourceTag,
  type Rule,
  type RuleFields,
} from "../api/rbin";
import { useSession } from "../context";
import { fieldId, LimitedText, NotSent, useFocusFirstInvalid } from "../fields";
import { charCount, lengthError } from "../limits";
import { DialogActions, Modal, useAction } from "../ui";

interface TagRow {
  key: string;
  value: string;
}

const toRows = (tags: ResourceTag[] | undefined): TagRow[] => (tags ?? []).map((t) => ({ key: t.ResourceTagKey, value: t.ResourceTagValue ?? "" }));
/** An empty value is left out: the rule then matches the key with any value. */
const toTags = (rows: TagRow[]): ResourceTag[] => rows.map((r) => (r.value === "" ? { ResourceTagKey: r.key } : { ResourceTagKey: r.key, ResourceTagValue: r.value }));

function wholeDays(text: string, min: number, max: number): string | undefined {
  const n = Number(text);
  if (text.trim() === "" || !Number.isInteger(n) || n < min || n > max) return `Enter a whole number of days from ${min} to ${max}.`;
  return undefined;
}

function descriptionError(d: string): string | undefined {
  if (/[\t\n\r\f\v]/.test(d)) return "The description may not hold tabs or line breaks.";
  return lengthError("The description", d, kMaxRuleDescriptionChars);
}

function rowErrors(rows: TagRow[]): { key?: string; value?: string }[] {
  return rows.map((r) => {
    const e: { key?: string; value?: string } = {};
    const n = charCount(r.key);
    if (n === 0) e.key = `Enter a key (1 to ${kMaxResourceTagKeyChars} characters), or remove this tag.`;
    else e.key = lengthError("The key", r.key, kMaxResourceTagKeyChars);
    e.value = lengthError("The value", r.value, kMaxResourceTagValueChars);
    return e;
  });
}

function TagRows(props: { title: string; hint: string; rows: TagRow[]; max: number; onChange: (rows: TagRow[]) => void; prefix: string }) {
  const errors = rowErrors(props.rows);
  const set = (i: number, r: TagRow) => props.onChange(props.rows.map((x, j) => (j === i ? r : x)));
  return (
    <fieldset class="tag-rows">
      <legend>{props.title}</legend>
      <p class="hint">{props.hint}</p>
      {props.rows.map((r, i) => (
        <div class="tag-row" key={i}>
          <LimitedText id={`${props.prefix}-key-${i}`} label={`Tag ${i + 1} key`} value={r.key} max={kMaxResourceTagKeyChars} error={errors[i].key} onInput={(v) => set(i, { ...r, key: v })} />
          <LimitedText id={`${props.prefix}-value-${i}`} label={`Tag ${i + 1} value`} value={r.value} max={kMaxResourceTagValueChars} error={errors[i].value} onInput={(v) => set(i, { ...r, value: v })} />
          <button type="button" class="secondary" onClick={() => props.onChange(props.rows.filter((_, j) => j !== i))} aria-label={`Remove ${props.title.toLowerCase()} tag ${i + 1}`}>
            Remove
          </button>
        </div>
      ))}
      {props.rows.length > props.max ? <p class="field-error">At most {props.max} tags; remove {props.rows.length - props.max}.</p> : null}
      <button type="button" class="secondary" onClick={() => props.onChange([...props.rows, { key: "", value: "" }])}>
        Add tag
      </button>
    </fieldset>
  );
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export function RuleEditor(props: { rule?: Rule; onClose: () => void; onDone: () => void }) {
  const { creds } = useSession();
  const r = props.rule;
  const [description, setDescription] = useState(r?.Description ?? "");
  const [days, setDays] = useState(r?.RetentionPeriod ? String(r.RetentionPeriod.RetentionPeriodValue) : "7");
  const [tagLevel, setTagLevel] = useState((r?.ResourceTags ?? []).length > 0);
  const [tags, setTags] = useState<TagRow[]>(toRows(r?.ResourceTags));
  const [exclude, setExclude] = useState<TagRow[]>(toRows(r?.ExcludeResourceTags));
  const [lock, setLock] = useState(false);
  const [delay, setDelay] = useState(String(kMinUnlockDelayDays));
  const [tried, setTried] = useState(false);
  const act = useAction();
  const form = useRef<HTMLFormElement>(null);
  const focusFirstInvalid = useFocusFirstInvalid();
  const ids = useRef({ desc: fieldId("rule-description"), days: fieldId("rule-days"), delay: fieldId("rule-delay") }).current;

  const dErr = descriptionError(description);
  const daysErr = wholeDays(days, kMinRetentionDays, kMaxRetentionDays);
  const delayErr = !r && lock ? wholeDays(delay, kMinUnlockDelayDays, kMaxUnlockDelayDays) : undefined;
  const shownTags = tagLevel ? tags : exclude;
  const tagProblems = rowErrors(shownTags).reduce((n, e) => n + (e.key ? 1 : 0) + (e.value ? 1 : 0), 0);
  const tooMany = shownTags.length > (tagLevel ? kMaxResourceTags : kMaxExcludeTags) ? 1 : 0;
  const needTags = tagLevel && tags.length === 0 ? 1 : 0;
  const problems = (dErr ? 1 : 0) + (daysErr ? 1 : 0) + (delayErr ? 1 : 0) + tagProblems + tooMany + needTags;

  const fields = (): RuleFields => {
    const f: RuleFields = {};
    const period = { RetentionPeriodValue: Number(days), RetentionPeriodUnit: "DAYS" as const };
    const resourceTags = tagLevel ? toTags(tags) : [];
    const excludeTags = tagLevel ? [] : toTags(exclude);
    if (!r) {
      f.RetentionPeriod = period;
      if (description !== "") f.Description = description;
      if (resourceTags.length) f.ResourceTags = resourceTags;
      if (excludeTags.length) f.ExcludeResourceTags = excludeTags;
      return f;
    }
    if (description !== (r.Description ?? "")) f.Description = description;
    if (!same(period, r.RetentionPeriod)) f.RetentionPeriod = period;
    if (!same(resourceTags, r.ResourceTags ?? [])) f.ResourceTags = resourceTags;
    if (!same(excludeTags, r.ExcludeResourceTags ?? [])) f.ExcludeResourceTags = excludeTags;
    return f;
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    setTried(true);
    if (act.busy) return;
    if (problems > 0) {
      focusFirstInvalid(form.current);
      return;
    }
    const f = fields();
    const ok = await act.run(() =>
      r
        ? updateRule(creds, r.Identifier, f)
        : createRule(creds, lock ? { ...f, LockConfiguration: { UnlockDelay: { UnlockDelayValue: Number(delay), UnlockDelayUnit: "DAYS" } } } : f),
    );
    if (ok !== undefined) props.onDone();
  };

  return (
    <Modal title={r ? `Edit rule ${r.Identifier}` : "Create retention rule"} onClose={props.onClose} busy={act.busy} wide>
      <form onSubmit={submit} ref={form} noValidate>
        {r?.LockState === "locked" || r?.LockState === "pending_unlock" ? (
          <p class="warning" data-testid="rule-locked-note">
            This rule is {r.LockState === "locked" ? "locked" : "locked until its unlock delay has passed"} (unlock delay{" "}
            {r.LockConfiguration?.UnlockDelay.UnlockDelayValue} days): snapvol refuses changes to it.
          </p>
        ) : null}
        <LimitedText id={ids.desc} name="description" label="Description (optional)" value={description} max={kMaxRuleDescriptionChars} error={dErr} onInput={setDescription} />
        <div class={daysErr && tried ? "field invalid" : "field"}>
          <label for={ids.days}>Retention period (days)</label>
          <input
            id={ids.days}
            name="retention-days"
            type="number"
            inputMode="numeric"
            value={days}
            onInput={(e) => setDays(e.currentTarget.value)}
            aria-invalid={daysErr ? "true" : undefined}
            aria-describedby={`${ids.days}-error`}
          />
          <span id={`${ids.days}-error`} class="field-error">
            {daysErr ?? ""}
          </span>
        </div>
        <fieldset>
          <legend>Applies to</legend>
          <label class="check">
            <input type="radio" name="rule-scope" checked={!tagLevel} onChange={() => setTagLevel(false)} /> Every snapshot of the account (an
            account-level rule), except those with an exclusion tag
          </label>
          <label class="check">
            <input type="radio" name="rule-scope" checked={tagLevel} onChange={() => setTagLevel(true)} /> Snapshots with one of these tags (a
            tag-level rule)
          </label>
        </fieldset>
        {tagLevel ? (
          <TagRows
            title="Resource tags"
            hint={`Up to ${kMaxResourceTags}. A tag with an empty value matches the key with any value.`}
            rows={tags}
            max={kMaxResourceTags}
            onChange={setTags}
            prefix="rule-tag"
          />
        ) : (
          <TagRows
            title="Exclusion tags"
            hint={`Up to ${kMaxExcludeTags}: snapshots with one of them are not kept. A tag with an empty value matches the key with any value.`}
            rows={exclude}
            max={kMaxExcludeTags}
            onChange={setExclude}
            prefix="rule-exclude"
          />
        )}
        {needTags && tried ? <p class="field-error">A tag-level rule needs at least one tag.</p> : null}
        {!r && !tagLevel && exclude.length === 0 ? (
          <div>
            <label class="check">
              <input type="checkbox" name="lock" checked={lock} onChange={(e) => setLock(e.currentTarget.checked)} /> Lock the rule (it cannot be
              changed or deleted until unlocked and the unlock delay has passed)
            </label>
            {lock ? (
              <div class={delayErr ? "field invalid" : "field"}>
                <label for={ids.delay}>Unlock delay (days)</label>
                <input id={ids.delay} type="number" inputMode="numeric" value={delay} onInput={(e) => setDelay(e.currentTarget.value)} aria-invalid={delayErr ? "true" : undefined} aria-describedby={`${ids.delay}-error`} />
                <span id={`${ids.delay}-error`} class="field-error">
                  {delayErr ?? ""}
                </span>
              </div>
            ) : null}
          </div>
        ) : null}
        <NotSent shown={tried} count={problems} />
        <DialogActions act={act} label={r ? "Save changes" : "Create rule"} busyLabel="Saving…" onCancel={props.onClose} />
      </form>
    </Modal>
  );
}
