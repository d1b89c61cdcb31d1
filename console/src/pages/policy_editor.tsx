// Create and edit a lifecycle policy (DLM CreateLifecyclePolicy / UpdateLifecyclePolicy), and
// delete one after confirmation. Every field shows its limit and its error while typed, as
// snapvold checks them (src/api/dlm_api.cc, src/lifecycle/policy_details.cc); nothing is sent
// while one is wrong. A description that names the schedule's time (daily-0200-utc) follows
// the time when it is changed; the schedule's own name stays, and the dialog says why.

import { useRef, useState } from "preact/hooks";

import {
  createPolicy,
  deletePolicy,
  kIntervals,
  kMaxPolicyDescriptionChars,
  kMaxRetainAge,
  kMaxRetainCount,
  kMaxScheduleNameChars,
  kPolicyDescriptionChars,
  updatePolicy,
  type Policy,
  type PolicyDetails,
  type RetainRule,
  type Schedule,
} from "../api/dlm";
import { useSession } from "../context";
import { fieldId, FieldFoot, LimitedText, NotSent, useFocusFirstInvalid } from "../fields";
import { countTagProblems, kMaxTagsPerResource, lengthError, validateTags } from "../limits";
import { rowsToTags, TagEditor, tagRows, type TagRow } from "../tag_editor";
import { localZoneName, Time } from "../time";
import { DialogActions, Modal, useAction } from "../ui";
import { hhmm, nextRunAfter, parseHhMm } from "./policy_schedule";

const kMaxRoleArnChars = 2048;
const kTimeRe = /^([01][0-9]|2[0-3]):[0-5][0-9]$/;

/** "0200" for "02:00": how a time appears in names such as daily-0200-utc. */
const token = (time: string) => time.replace(":", "");

function defaultName(interval: number, time: string): string {
  return interval === 24 ? `daily-${token(time)}-utc` : `every-${interval}h-from-${token(time)}-utc`;
}

function descriptionError(d: string): string | undefined {
  if (d === "") return `Enter a description (1 to ${kMaxPolicyDescriptionChars} characters).`;
  const long = lengthError("The description", d, kMaxPolicyDescriptionChars);
  if (long) return long;
  if (!kPolicyDescriptionChars.test(d)) {
    const bad = [...new Set([...d].filter((c) => !kPolicyDescriptionChars.test(c)))].join(" ");
    return `Only letters, digits, spaces, _ and - are allowed (not ${bad}).`;
  }
  return undefined;
}

function intError(what: string, v: string, lo: number, hi: number): string | undefined {
  if (!/^\d+$/.test(v)) return `${what}: enter a whole number from ${lo} to ${hi}.`;
  const n = Number(v);
  if (n < lo || n > hi) return `${what}: ${n} is outside ${lo} to ${hi}.`;
  return undefined;
}

/** `props.policy` undefined: a new policy. */
export function PolicyEditorDialog(props: { policy?: Policy; onClose: () => void; onDone: (msg: string) => void }) {
  const { creds, me } = useSession();
  const p = props.policy;
  const creating = p === undefined;
  const schedules = p?.PolicyDetails?.Schedules ?? [];
  const first: Schedule | undefined = schedules[0];
  const usesCron = Boolean(first?.CreateRule?.CronExpression);
  const originalTime = first?.CreateRule?.Times?.[0] ?? "02:00";
  const untargeted = !creating && (p?.PolicyDetails?.TargetTags ?? []).length === 0;
  const resourceType = p?.PolicyDetails?.ResourceTypes?.[0] ?? "VOLUME";

  const [interval, setEvery] = useState(first?.CreateRule?.Interval ?? 24);
  const [time, setTime] = useState(originalTime);
  const [description, setDescription] = useState(p?.Description ?? defaultName(24, "02:00"));
  const [descriptionTouched, setDescriptionTouched] = useState(false);
  const [scheduleName, setScheduleName] = useState(first?.Name ?? defaultName(24, "02:00"));
  const [nameTouched, setNameTouched] = useState(false);
  const [retainKind, setRetainKind] = useState<"count" | "age">(first?.RetainRule?.Interval ? "age" : "count");
  const [count, setCount] = useState(String(first?.RetainRule?.Count ?? 7));
  const [age, setAge] = useState(String(first?.RetainRule?.Interval ?? 30));
  const [ageUnit, setAgeUnit] = useState(first?.RetainRule?.IntervalUnit ?? "DAYS");
  const [enabled, setEnabled] = useState((p?.State ?? "ENABLED") === "ENABLED");
  const [copyTags, setCopyTags] = useState(first?.CopyTags ?? false);
  const [role, setRole] = useState(`arn:aws:iam::${me.accountId}:role/AWSDataLifecycleManagerDefaultRole`);
  const [targets, setTargets] = useState<TagRow[]>(() =>
    tagRows((p?.PolicyDetails?.TargetTags ?? []).map((t) => ({ key: t.Key, value: t.Value }))),
  );
  const [tried, setTried] = useState(false);
  const focusFirstInvalid = useFocusFirstInvalid();
  const formRef = useRef<HTMLFormElement>(null);
  const ids = useRef({
    description: fieldId("policy-description"),
    name: fieldId("policy-schedule-name"),
    time: fieldId("policy-time"),
    interval: fieldId("policy-interval"),
    count: fieldId("policy-count"),
    age: fieldId("policy-age"),
    role: fieldId("policy-role"),
  }).current;
  const act = useAction();

  // The description (and a new schedule's name) follow the time while they name it.
  const retime = (nextInterval: number, nextTime: string) => {
    if (!kTimeRe.test(nextTime)) return;
    if (creating) {
      if (!descriptionTouched) setDescription(defaultName(nextInterval, nextTime));
      if (!nameTouched) setScheduleName(defaultName(nextInterval, nextTime));
    } else if (!descriptionTouched && (p?.Description ?? "").includes(token(originalTime))) {
      setDescription((p?.Description ?? "").split(token(originalTime)).join(token(nextTime)));
    }
  };

  const timeError = usesCron ? undefined : kTimeRe.test(time) ? undefined : "Enter a 24-hour time as hh:mm, from 00:00 to 23:59 (UTC).";
  const errors = {
    description: descriptionError(description),
    name: creating
      ? scheduleName === ""
        ? `Enter a name (1 to ${kMaxScheduleNameChars} characters).`
        : lengthError("The name", scheduleName, kMaxScheduleNameChars)
      : undefined,
    time: timeError,
    count: retainKind === "count" ? intError("Snapshots to keep", count, 1, kMaxRetainCount) : undefined,
    age: retainKind === "age" ? intError("Keep for", age, 1, kMaxRetainAge[ageUnit] ?? 1) : undefined,
    role: creating
      ? !role.startsWith("arn:")
        ? "Enter an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)."
        : lengthError("The role ARN", role, kMaxRoleArnChars)
      : undefined,
  };
  const targetErrors = validateTags(rowsToTags(targets), kMaxTagsPerResource);
  const noTargets = !untargeted && targets.length === 0 ? "Add at least one target tag: the policy snapshots the volumes that have any of them." : undefined;
  const problems =
    Object.values(errors).filter(Boolean).length + (untargeted ? 0 : countTagProblems(targetErrors)) + (noTargets ? 1 : 0);

  const draftRule = usesCron ? first?.CreateRule : { Interval: interval, IntervalUnit: "HOURS", Times: [time] };
  const next = timeError ? null : nextRunAfter(draftRule, Date.now());
  const followed = !creating && !descriptionTouched && description !== (p?.Description ?? "");
  const staleDescription =
    !creating && descriptionTouched && time !== originalTime && description.includes(token(originalTime));
  const staleScheduleName = !creating && time !== originalTime && (first?.Name ?? "").includes(token(originalTime));

  const submit = async (e: Event) => {
    e.preventDefault();
    setTried(true);
    if (act.busy) return;
    if (problems > 0) return focusFirstInvalid(formRef.current);
    const retain: RetainRule = retainKind === "count" ? { Count: Number(count) } : { Interval: Number(age), IntervalUnit: ageUnit };
    const targetTags = rowsToTags(targets).map((t) => ({ Key: t.key, Value: t.value }));
    if (creating) {
      const details: PolicyDetails = {
        PolicyType: "EBS_SNAPSHOT_MANAGEMENT",
        ResourceTypes: ["VOLUME"],
        TargetTags: targetTags,
        Schedules: [
          {
            Name: scheduleName,
            CopyTags: copyTags,
            CreateRule: { Interval: interval, IntervalUnit: "HOURS", Times: [time] },
            RetainRule: retain,
          },
        ],
      };
      const id = await act.run(() =>
        createPolicy(creds, { ExecutionRoleArn: role, Description: description, State: enabled ? "ENABLED" : "DISABLED", PolicyDetails: details }),
      );
      if (id) props.onDone(`Created policy ${id}.`);
      return;
    }
    // UpdateLifecyclePolicy replaces PolicyDetails whole: everything else goes back as it was.
    const edited: Schedule = { ...first, CopyTags: copyTags, RetainRule: retain };
    if (!usesCron) edited.CreateRule = { ...first?.CreateRule, Interval: interval, IntervalUnit: "HOURS", Times: [time] };
    const details: PolicyDetails = { ...p!.PolicyDetails, Schedules: [edited, ...schedules.slice(1)] };
    if (!untargeted) details.TargetTags = targetTags;
    const ok = await act.run(() =>
      updatePolicy(creds, p!.PolicyId, { State: enabled ? "ENABLED" : "DISABLED", Description: description, PolicyDetails: details }),
    );
    if (ok !== undefined) props.onDone(`Saved policy ${p!.PolicyId}.`);
  };

  const localTime = next !== null ? new Date(next) : null;
  return (
    <Modal title={creating ? "Create lifecycle policy" : `Edit ${p!.PolicyId}`} onClose={props.onClose} busy={act.busy} wide>
      <form ref={formRef} onSubmit={submit} noValidate>
        <LimitedText
          id={ids.description}
          label="Description"
          value={description}
          max={kMaxPolicyDescriptionChars}
          error={errors.description}
          onInput={(v) => {
            setDescription(v);
            setDescriptionTouched(true);
          }}
        />
        {followed ? (
          <p class="hint" data-testid="name-follows">
            The description follows the new time: “{p?.Description}” becomes “{description}”.
          </p>
        ) : null}
        {staleDescription ? (
          <p class="warning" data-testid="name-stale">
            The description still says {token(originalTime)}, but the policy will run at {time} UTC.
          </p>
        ) : null}
        {creating ? (
          <LimitedText
            id={ids.name}
            label="Schedule name"
            value={scheduleName}
            max={kMaxScheduleNameChars}
            error={errors.name}
            onInput={(v) => {
              setScheduleName(v);
              setNameTouched(true);
            }}
          />
        ) : (
          <p class="hint">
            Schedule <code>{first?.Name ?? "—"}</code>
            {schedules.length > 1 ? ` (the first of ${schedules.length}; the others are kept as they are)` : ""}.
          </p>
        )}
        {staleScheduleName ? (
          <p class="warning" data-testid="schedule-name-kept">
            The schedule keeps its name “{first?.Name}”: the snapshots it made are tagged aws:dlm:lifecycle-schedule-name={first?.Name}, and
            retention counts only the snapshots of the schedule’s own name, so renaming it would leave them out of retention.
            The new time applies all the same.
          </p>
        ) : null}

        {usesCron ? (
          <p>
            Schedule: <code>{first?.CreateRule?.CronExpression}</code> (UTC; edit cron schedules with the API).
          </p>
        ) : (
          <div class="policy-when">
            <div class="field">
              <label for={ids.interval}>Every</label>
              <select
                id={ids.interval}
                value={String(interval)}
                onChange={(e) => {
                  const n = Number(e.currentTarget.value);
                  setEvery(n);
                  retime(n, time);
                }}
              >
                {kIntervals.map((n) => (
                  <option key={n} value={String(n)}>
                    {n === 24 ? "24 hours (daily)" : `${n} hour${n === 1 ? "" : "s"}`}
                  </option>
                ))}
              </select>
            </div>
            <div class={errors.time ? "field invalid" : "field"}>
              <label for={ids.time}>{interval === 24 ? "Daily time (UTC)" : "Start time (UTC)"}</label>
              <input
                id={ids.time}
                value={time}
                placeholder="hh:mm"
                inputMode="numeric"
                aria-invalid={errors.time ? "true" : undefined}
                aria-describedby={`${ids.time}-error ${ids.time}-local`}
                onInput={(e) => {
                  setTime(e.currentTarget.value);
                  retime(interval, e.currentTarget.value);
                }}
              />
              <FieldFoot errorId={`${ids.time}-error`} error={errors.time} />
              <span id={`${ids.time}-local`} class="sub">
                {localTime && !errors.time
                  ? `${String(localTime.getHours()).padStart(2, "0")}:${String(localTime.getMinutes()).padStart(2, "0")} in your time zone (${localZoneName()})`
                  : ""}
              </span>
            </div>
          </div>
        )}
        <p class="hint" data-testid="draft-next-run">
          Next run: {next !== null ? <Time iso={new Date(next).toISOString()} withRelative /> : "—"}
          {interval !== 24 && !usesCron && !errors.time
            ? ` (every ${interval} hours at ${runTimes(interval, time).join(", ")} UTC)`
            : ""}
        </p>

        <fieldset class="policy-retain">
          <legend>Retention</legend>
          <label class="check">
            <input type="radio" name="retain-kind" checked={retainKind === "count"} onChange={() => setRetainKind("count")} />
            <span>Keep the newest snapshots of each volume, by count</span>
          </label>
          <label class="check">
            <input type="radio" name="retain-kind" checked={retainKind === "age"} onChange={() => setRetainKind("age")} />
            <span>Keep snapshots for a time</span>
          </label>
          {retainKind === "count" ? (
            <div class={errors.count ? "field invalid" : "field"}>
              <label for={ids.count}>Snapshots to keep</label>
              <input
                id={ids.count}
                inputMode="numeric"
                value={count}
                aria-invalid={errors.count ? "true" : undefined}
                aria-describedby={`${ids.count}-error ${ids.count}-limit`}
                onInput={(e) => setCount(e.currentTarget.value)}
              />
              <FieldFoot errorId={`${ids.count}-error`} error={errors.count} />
              <span id={`${ids.count}-limit`} class="sub">
                1 to {kMaxRetainCount}
              </span>
            </div>
          ) : (
            <div class="policy-age">
              <div class={errors.age ? "field invalid" : "field"}>
                <label for={ids.age}>Keep for</label>
                <input
                  id={ids.age}
                  inputMode="numeric"
                  value={age}
                  aria-invalid={errors.age ? "true" : undefined}
                  aria-describedby={`${ids.age}-error`}
                  onInput={(e) => setAge(e.currentTarget.value)}
                />
                <FieldFoot errorId={`${ids.age}-error`} error={errors.age} />
              </div>
              <label>
                <span>Unit (up to {kMaxRetainAge[ageUnit]})</span>
                <select value={ageUnit} onChange={(e) => setAgeUnit(e.currentTarget.value)}>
                  {Object.keys(kMaxRetainAge).map((u) => (
                    <option key={u} value={u}>
                      {u.toLowerCase()}
                    </option>
                  ))}
                </select>
              </label>
            </div>
          )}
        </fieldset>

        {untargeted ? (
          <p class="hint">Targets: every volume of the account (this is the account’s default policy).</p>
        ) : (
          <div class="policy-targets">
            <p class="hint">
              Targets: the {resourceType === "INSTANCE" ? "instances" : "volumes"} that have any of these tags.
            </p>
            <TagEditor rows={targets} onChange={setTargets} errors={targetErrors} showAll={tried} />
            {noTargets && tried ? (
              <p class="field-error" role="alert">
                {noTargets}
              </p>
            ) : null}
          </div>
        )}
        <label class="check">
          <input type="checkbox" checked={copyTags} onChange={(e) => setCopyTags(e.currentTarget.checked)} />
          <span>Copy each volume’s tags to its snapshots</span>
        </label>
        {creating ? (
          <div class={errors.role ? "field invalid" : "field"}>
            <label for={ids.role}>Execution role ARN</label>
            <input
              id={ids.role}
              value={role}
              aria-invalid={errors.role ? "true" : undefined}
              aria-describedby={`${ids.role}-error ${ids.role}-count`}
              onInput={(e) => setRole(e.currentTarget.value)}
            />
            <FieldFoot errorId={`${ids.role}-error`} error={errors.role} counterId={`${ids.role}-count`} value={role} max={kMaxRoleArnChars} />
          </div>
        ) : null}
        <label class="check">
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.currentTarget.checked)} />
          <span>Enabled</span>
        </label>
        <NotSent shown={tried} count={problems} />
        <DialogActions
          act={act}
          label={creating ? "Create policy" : "Save policy"}
          busyLabel={creating ? "Creating…" : "Saving…"}
          onCancel={props.onClose}
        />
      </form>
    </Modal>
  );
}

/** The UTC times of day an interval schedule runs at. */
function runTimes(interval: number, time: string): string[] {
  const start = parseHhMm(time) ?? 0;
  const out: string[] = [];
  const step = interval * 60;
  for (let m = start % step; m < 24 * 60; m += step) out.push(hhmm(m));
  return out;
}

export function DeletePolicyDialog(props: { policy: Policy; isDefault: boolean; onClose: () => void; onDone: (msg: string) => void }) {
  const { creds } = useSession();
  const act = useAction();
  const id = props.policy.PolicyId;
  const confirm = async () => {
    const ok = await act.run(() => deletePolicy(creds, id));
    if (ok !== undefined) props.onDone(`Deleted policy ${id}.`);
  };
  return (
    <Modal title={`Delete ${id}?`} onClose={props.onClose} busy={act.busy}>
      <p>
        The policy <code>{id}</code>
        {props.policy.Description ? ` (“${props.policy.Description}”)` : ""} will be deleted: it takes no more snapshots and
        deletes none. The snapshots it made stay, and are no longer pruned by any rule.
      </p>
      {props.isDefault ? (
        <p class="warning">This is the account’s default policy; snapvol does not create it again.</p>
      ) : null}
      <DialogActions act={act} label="Delete policy" busyLabel="Deleting…" onCancel={props.onClose} onAction={confirm} danger cancelFirst />
    </Modal>
  );
}
