// The account's Recycle Bin retention rules (rbin ListRules + GetRule), on the Recycle Bin
// page: what each keeps (account-level, or snapshots with given tags), for how long, and its
// lock (locked, or an unlock pending until a time; the unlock delay either way). Create, edit,
// lock, unlock and delete are offered to everyone: the IAM policy decides, and a refusal
// (AccessDeniedException, or a locked rule's ConflictException) is shown as the API sent it.
// The form is rbin_rule_editor.tsx.

import { useState } from "preact/hooks";

import { deleteRule, getRule, listRules, lockRule, unlockRule, kMaxUnlockDelayDays, kMinUnlockDelayDays, type Rule } from "../api/rbin";
import { dlmTime } from "../api/dlm";
import { useSession } from "../context";
import { RowMenu } from "../row_menu";
import { DialogActions, ErrorNote, ListTable, Modal, StateBadge, Time, useAction, useLoader } from "../ui";
import { RuleEditor } from "./rbin_rule_editor";

function tagsText(tags: Rule["ResourceTags"]): string {
  return (tags ?? []).map((t) => (t.ResourceTagValue === undefined ? `${t.ResourceTagKey}=(any value)` : `${t.ResourceTagKey}=${t.ResourceTagValue}`)).join(", ");
}

/** What the rule keeps, in words. */
function scopeText(r: Rule): string {
  if ((r.ResourceTags ?? []).length > 0) return `Snapshots tagged ${tagsText(r.ResourceTags)}`;
  if ((r.ExcludeResourceTags ?? []).length > 0) return `Every snapshot of the account except those tagged ${tagsText(r.ExcludeResourceTags)}`;
  return "Every snapshot of the account";
}

export function unlockDelayDays(r: Rule): number | undefined {
  return r.LockConfiguration?.UnlockDelay.UnlockDelayValue;
}

function LockCell({ rule }: { rule: Rule }) {
  const state = rule.LockState ?? "";
  const delay = unlockDelayDays(rule);
  if (state === "" || state === "unlocked") return <span data-testid="lock-state">{state === "" ? "not locked" : "unlocked"}</span>;
  return (
    <span data-testid="lock-state">
      <StateBadge state={state} /> <span class="sub block">unlock delay {delay} days</span>
      {state === "pending_unlock" && rule.LockEndTime !== undefined ? (
        <span class="sub block">
          unlocked at <Time iso={dlmTime(rule.LockEndTime)} />
        </span>
      ) : null}
    </span>
  );
}

type Dialog = { kind: "create" } | { kind: "edit"; rule: Rule } | { kind: "lock"; rule: Rule } | { kind: "unlock"; rule: Rule } | { kind: "delete"; rule: Rule };

export function RetentionRules() {
  const { creds, me } = useSession();
  const rules = useLoader(async () => Promise.all((await listRules(creds)).map((s) => getRule(creds, s.Identifier))), [creds]);
  const [dialog, setDialog] = useState<Dialog | null>(null);
  const done = () => {
    setDialog(null);
    rules.reload();
  };
  return (
    <section aria-labelledby="rules-title" class="details-part">
      <div class="page-head">
        <h2 id="rules-title">Retention rules of {me.alias}</h2>
        <button type="button" onClick={() => setDialog({ kind: "create" })}>
          Create retention rule
        </button>
      </div>
      <p class="hint">
        A snapshot deleted while a rule applies to it goes to the Recycle Bin for the rule's retention period (the longest, when several
        apply). A locked rule cannot be changed or deleted until it is unlocked and its unlock delay has passed.
      </p>
      <ErrorNote error={rules.error} />
      <ListTable
        loading={rules.loading && !rules.data}
        rows={rules.data}
        loadingText="Loading retention rules…"
        empty="This account has no retention rules: deleted snapshots are deleted for good (unless snapvold keeps them by default)."
        label="Retention rules"
        columns={["Rule", "Description", "Retention", "Applies to", "Lock", "Actions"]}
      >
        {(rules.data ?? []).map((r) => {
          const locked = r.LockState === "locked";
          return (
            <tr key={r.Identifier} data-rule-id={r.Identifier} data-lock-state={r.LockState ?? ""}>
              <td data-label="Rule">
                <code>{r.Identifier}</code>
              </td>
              <td data-label="Description" class="wrap">
                {r.Description || <span class="muted">—</span>}
              </td>
              <td data-label="Retention" data-testid="retention">
                {r.RetentionPeriod?.RetentionPeriodValue} days
              </td>
              <td data-label="Applies to" class="wrap">
                {scopeText(r)}
              </td>
              <td data-label="Lock">
                <LockCell rule={r} />
              </td>
              <td data-label="Actions">
                <RowMenu
                  label={`Actions for rule ${r.Identifier}`}
                  items={[
                    { label: "Edit", name: `Edit rule ${r.Identifier}`, onSelect: () => setDialog({ kind: "edit", rule: r }) },
                    locked
                      ? { label: "Unlock", name: `Unlock rule ${r.Identifier}`, onSelect: () => setDialog({ kind: "unlock", rule: r }) }
                      : { label: "Lock", name: `Lock rule ${r.Identifier}`, onSelect: () => setDialog({ kind: "lock", rule: r }) },
                    { label: "Delete", name: `Delete rule ${r.Identifier}`, danger: true, onSelect: () => setDialog({ kind: "delete", rule: r }) },
                  ]}
                />
              </td>
            </tr>
          );
        })}
      </ListTable>
      {dialog?.kind === "create" ? <RuleEditor onClose={() => setDialog(null)} onDone={done} /> : null}
      {dialog?.kind === "edit" ? <RuleEditor rule={dialog.rule} onClose={() => setDialog(null)} onDone={done} /> : null}
      {dialog?.kind === "lock" ? <LockDialog rule={dialog.rule} onClose={() => setDialog(null)} onDone={done} /> : null}
      {dialog?.kind === "unlock" || dialog?.kind === "delete" ? (
        <ConfirmRuleDialog kind={dialog.kind} rule={dialog.rule} onClose={() => setDialog(null)} onDone={done} />
      ) : null}
    </section>
  );
}

function LockDialog(props: { rule: Rule; onClose: () => void; onDone: () => void }) {
  const { creds } = useSession();
  const act = useAction();
  const [days, setDays] = useState(String(unlockDelayDays(props.rule) ?? kMinUnlockDelayDays));
  const n = Number(days);
  const error =
    days.trim() === "" || !Number.isInteger(n) || n < kMinUnlockDelayDays || n > kMaxUnlockDelayDays
      ? `Enter a whole number of days from ${kMinUnlockDelayDays} to ${kMaxUnlockDelayDays}.`
      : undefined;
  const submit = async (e: Event) => {
    e.preventDefault();
    if (act.busy || error) return;
    if ((await act.run(() => lockRule(creds, props.rule.Identifier, n))) !== undefined) props.onDone();
  };
  return (
    <Modal title={`Lock rule ${props.rule.Identifier}`} onClose={props.onClose} busy={act.busy}>
      <form onSubmit={submit}>
        <p>While locked, the rule cannot be changed or deleted. Unlocking takes effect only after the unlock delay.</p>
        <div class={error ? "field invalid" : "field"}>
          <label for="lock-delay">Unlock delay (days)</label>
          <input
            id="lock-delay"
            type="number"
            inputMode="numeric"
            value={days}
            onInput={(e) => setDays(e.currentTarget.value)}
            aria-invalid={error ? "true" : undefined}
            aria-describedby="lock-delay-error"
          />
          <span id="lock-delay-error" class="field-error">
            {error ?? ""}
          </span>
        </div>
        <DialogActions act={act} label="Lock" busyLabel="Locking…" onCancel={props.onClose} />
      </form>
    </Modal>
  );
}

function ConfirmRuleDialog(props: { kind: "unlock" | "delete"; rule: Rule; onClose: () => void; onDone: () => void }) {
  const { creds } = useSession();
  const act = useAction();
  const id = props.rule.Identifier;
  const go = async () => {
    const ok = await act.run(async () => {
      if (props.kind === "unlock") await unlockRule(creds, id);
      else await deleteRule(creds, id);
      return true;
    });
    if (ok) props.onDone();
  };
  return (
    <Modal title={`${props.kind === "unlock" ? "Unlock" : "Delete"} rule ${id}`} onClose={props.onClose} busy={act.busy}>
      <p>
        {props.kind === "unlock"
          ? `The rule stays locked for its unlock delay (${unlockDelayDays(props.rule) ?? "?"} days), then it can be changed or deleted.`
          : "Snapshots deleted from now on are no longer kept by this rule. Those already in the bin stay until their retention ends."}
      </p>
      <DialogActions
        act={act}
        label={props.kind === "unlock" ? "Unlock" : "Delete rule"}
        busyLabel="Sending…"
        onCancel={props.onClose}
        onAction={go}
        danger={props.kind === "delete"}
        cancelFirst
      />
    </Modal>
  );
}
