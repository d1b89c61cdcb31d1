// Dialogs for several selected snapshots: delete and tag. Each lists exactly the snapshots it
// acts on, acts on them one by one, and reports each one's outcome (an error by id).

import { useRef, useState } from "preact/hooks";

import { asApiError } from "../api/errors";
import { ec2, type Snapshot, tagParams } from "../api/ec2";
import { useSession } from "../context";
import { NotSent } from "../fields";
import { TagEditor, useDescribedTagsForm } from "../tag_editor";
import { Modal } from "../ui";

type Outcome = { ok: true } | { ok: false; code: string; message: string };

/** Runs `each` for every id one after the other, noting each one's outcome as it comes. */
function useBulk() {
  const [outcomes, setOutcomes] = useState<Map<string, Outcome>>(new Map());
  const [running, setRunning] = useState(false);
  const run = async (ids: string[], each: (id: string) => Promise<unknown>) => {
    setRunning(true);
    const got = new Map<string, Outcome>();
    for (const id of ids) {
      try {
        await each(id);
        got.set(id, { ok: true });
      } catch (e) {
        const err = asApiError(e);
        got.set(id, { ok: false, code: err.code, message: err.message });
      }
      setOutcomes(new Map(got));
    }
    setRunning(false);
  };
  return { outcomes, running, run, done: outcomes.size > 0 && !running };
}

/** What a finished (or running) bulk action did to each id, and the button that closes its dialog. */
function BulkDone(props: { ids: string[]; bulk: ReturnType<typeof useBulk>; verb: string; onClose: () => void }) {
  return (
    <>
      <Outcomes ids={props.ids} outcomes={props.bulk.outcomes} verb={props.verb} />
      <div class="buttons">
        <button type="button" onClick={props.onClose} disabled={props.bulk.running}>
          Close
        </button>
      </div>
    </>
  );
}

function Outcomes(props: { ids: string[]; outcomes: Map<string, Outcome>; verb: string }) {
  const failed = props.ids.filter((id) => props.outcomes.get(id)?.ok === false).length;
  const ok = props.ids.filter((id) => props.outcomes.get(id)?.ok === true).length;
  return (
    <div class="result" role="status">
      <p data-testid="bulk-summary">
        {props.verb} {ok} of {props.ids.length}
        {failed ? `; ${failed} failed` : ""}.
      </p>
      <ul class="plain lv-outcomes" data-testid="bulk-outcomes">
        {props.ids.map((id) => {
          const o = props.outcomes.get(id);
          return (
            <li key={id} data-snapshot-id={id} data-outcome={o ? (o.ok ? "ok" : "failed") : "waiting"}>
              <code>{id}</code>:{" "}
              {!o ? (
                <span class="muted">waiting</span>
              ) : o.ok ? (
                <span class="state-completed">{props.verb.toLowerCase()}</span>
              ) : (
                <span class="error-text">
                  failed: {o.message} <span class="error-code">({o.code})</span>
                </span>
              )}
            </li>
          );
        })}
      </ul>
    </div>
  );
}

/** Deletes the selected snapshots one by one after listing exactly which; pending ones are
 *  not deletable and are listed as left alone. */
export function BulkDeleteDialog(props: { snapshots: Snapshot[]; onClose: (changed: boolean) => void }) {
  const { creds } = useSession();
  const ids = props.snapshots.filter((s) => s.status !== "pending").map((s) => s.snapshotId);
  const skipped = props.snapshots.filter((s) => s.status === "pending").map((s) => s.snapshotId);
  const bulk = useBulk();
  const close = () => props.onClose(bulk.outcomes.size > 0);
  return (
    <Modal title={`Delete ${ids.length} snapshot${ids.length === 1 ? "" : "s"}?`} onClose={close} busy={bulk.running}>
      {!bulk.done && !bulk.running ? (
        <>
          <p>These snapshots will be deleted. This cannot be undone; other snapshots are not affected.</p>
          <ul class="plain lv-ids" data-testid="bulk-delete-ids">
            {ids.map((id) => (
              <li key={id}>
                <code>{id}</code>
              </li>
            ))}
          </ul>
          {skipped.length > 0 ? (
            <p data-testid="bulk-delete-skipped">
              Left alone, because a pending snapshot cannot be deleted: {skipped.map((id, i) => <span key={id}>{i ? ", " : ""}<code>{id}</code></span>)}
            </p>
          ) : null}
          <div class="buttons">
            <button type="button" class="danger" disabled={ids.length === 0} onClick={() => bulk.run(ids, (id) => ec2(creds, "DeleteSnapshot", { SnapshotId: id }))}>
              Delete {ids.length} snapshot{ids.length === 1 ? "" : "s"}
            </button>
            <button type="button" class="secondary" onClick={close} autoFocus>
              Cancel
            </button>
          </div>
        </>
      ) : (
        <BulkDone ids={ids} bulk={bulk} verb="Deleted" onClose={close} />
      )}
    </Modal>
  );
}

/** Adds tags to every selected snapshot (CreateTags per snapshot: a key it already has takes
 *  the new value; its other tags stay). */
export function BulkTagDialog(props: { snapshots: Snapshot[]; onClose: (changed: boolean) => void }) {
  const { creds } = useSession();
  const ids = props.snapshots.map((s) => s.snapshotId);
  const form = useDescribedTagsForm({ tags: [] });
  const formRef = useRef<HTMLFormElement>(null);
  const bulk = useBulk();
  const [empty, setEmpty] = useState(false);
  const close = () => props.onClose(bulk.outcomes.size > 0);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (bulk.running || !form.check(formRef.current)) return;
    if (form.rows.length === 0) return setEmpty(true);
    const p = tagParams(form.rows);
    await bulk.run(ids, (id) => ec2(creds, "CreateTags", { "ResourceId.1": id, ...p }));
  };
  return (
    <Modal title={`Tag ${ids.length} snapshot${ids.length === 1 ? "" : "s"}`} onClose={close} busy={bulk.running} wide>
      {!bulk.done && !bulk.running ? (
        <form ref={formRef} onSubmit={submit} noValidate>
          <p>
            These tags are added to each of{" "}
            {ids.map((id, i) => (
              <span key={id}>
                {i ? ", " : ""}
                <code>{id}</code>
              </span>
            ))}
            . A key a snapshot already has takes the value given here; its other tags stay.
          </p>
          <TagEditor rows={form.rows} onChange={(r) => { setEmpty(false); form.setRows(r); }} errors={form.tagErrors} showAll={form.tried} />
          {empty ? (
            <p class="error" role="alert">
              Add at least one tag.
            </p>
          ) : null}
          <NotSent shown={form.tried} count={form.problems} />
          <div class="buttons">
            <button type="submit">Add tags to {ids.length}</button>
            <button type="button" class="secondary" onClick={close}>
              Cancel
            </button>
          </div>
        </form>
      ) : (
        <BulkDone ids={ids} bulk={bulk} verb="Tagged" onClose={close} />
      )}
    </Modal>
  );
}
