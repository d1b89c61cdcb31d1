// Times as people read them: in the browser's local time zone (or UTC, a setting kept in
// localStorage and offered in the header), with the other one in the tooltip; recent and
// upcoming events also say how far away they are ("3 minutes ago", "in 5 hours").
// The server sends ISO-8601 UTC; nothing here changes the instant, only how it is written.

import { useEffect, useState } from "preact/hooks";

export type TimeZoneMode = "local" | "utc";

const kStorageKey = "snapvol.console.timeZone";
/** Events closer than this to now are shown relative, with the absolute time on hover. */
const kRelativeWithinMs = 24 * 3600_000;
const kTickMs = 30_000;

function storedMode(): TimeZoneMode {
  try {
    return localStorage.getItem(kStorageKey) === "utc" ? "utc" : "local";
  } catch {
    return "local"; // storage refused (privacy mode): local time, not remembered
  }
}

let mode: TimeZoneMode = storedMode();
const listeners = new Set<() => void>();

export function setTimeZoneMode(next: TimeZoneMode) {
  mode = next;
  try {
    localStorage.setItem(kStorageKey, next);
  } catch {
    // not remembered across reloads; still applied now
  }
  for (const l of [...listeners]) l();
}

/** The current setting; the component re-renders when it changes (in this tab or another). */
export function useTimeZoneMode(): TimeZoneMode {
  const [m, setM] = useState(mode);
  useEffect(() => {
    const on = () => setM(mode);
    const onStorage = (e: StorageEvent) => {
      if (e.key !== kStorageKey) return;
      mode = storedMode();
      for (const l of [...listeners]) l();
    };
    listeners.add(on);
    window.addEventListener("storage", onStorage);
    on();
    return () => {
      listeners.delete(on);
      window.removeEventListener("storage", onStorage);
    };
  }, []);
  return m;
}

/** Date.now(), refreshed every 30 seconds so relative times move. */
export function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = window.setInterval(() => setNow(Date.now()), kTickMs);
    return () => window.clearInterval(t);
  }, []);
  return now;
}

const pad = (n: number) => String(n).padStart(2, "0");

/** The browser's time zone name (e.g. America/New_York). */
export function localZoneName(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
}

function localZoneAbbreviation(d: Date): string {
  const part = new Intl.DateTimeFormat("en-US", { timeZoneName: "short" }).formatToParts(d).find((p) => p.type === "timeZoneName");
  return part?.value ?? "local";
}

/** "2026-12-03 22:30:05 UTC". */
export function formatUtc(d: Date): string {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

/** "2026-12-03 17:30:05 EST" in the browser's zone. */
export function formatLocal(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${localZoneAbbreviation(d)}`;
}

export function formatIn(d: Date, m: TimeZoneMode): string {
  return m === "utc" ? formatUtc(d) : formatLocal(d);
}

/** "3 minutes ago", "in 5 hours", "just now". */
export function formatRelative(d: Date, now: number): string {
  const diff = d.getTime() - now;
  const abs = Math.abs(diff);
  if (abs < 45_000) return diff <= 0 ? "just now" : "in less than a minute";
  const rtf = new Intl.RelativeTimeFormat("en", { numeric: "always" });
  if (abs < 3600_000) return rtf.format(Math.round(diff / 60_000), "minute");
  if (abs < 86_400_000) return rtf.format(Math.round(diff / 3600_000), "hour");
  return rtf.format(Math.round(diff / 86_400_000), "day");
}

/** An ISO-8601 time in the chosen zone, the other zone in its tooltip. Times within a day of
 *  now read relative ("3 minutes ago") unless `absolute`; `withRelative` shows both. */
export function Time(props: { iso: string | undefined; absolute?: boolean; withRelative?: boolean }) {
  const m = useTimeZoneMode();
  const now = useNow();
  const { iso } = props;
  if (!iso) return <span class="muted">—</span>;
  const d = new Date(iso);
  if (isNaN(d.getTime())) return <span>{iso}</span>;
  const shown = formatIn(d, m);
  const other = m === "utc" ? formatLocal(d) : formatUtc(d);
  const recent = Math.abs(d.getTime() - now) < kRelativeWithinMs;
  const relative = formatRelative(d, now);
  if (props.withRelative)
    return (
      <time dateTime={d.toISOString()} title={other} data-zone={m}>
        {shown} <span class="time-relative">({relative})</span>
      </time>
    );
  if (recent && !props.absolute)
    return (
      <time dateTime={d.toISOString()} title={`${shown} · ${other}`} data-zone={m}>
        {relative}
      </time>
    );
  return (
    <time dateTime={d.toISOString()} title={other} data-zone={m}>
      {shown}
    </time>
  );
}

/** The header's setting: times in local time or in UTC, remembered in this browser. */
export function TimeZoneSetting() {
  const m = useTimeZoneMode();
  return (
    <label class="inline time-setting" title={`Local time here is ${localZoneName()}`}>
      <span>Times in</span>
      <select value={m} onChange={(e) => setTimeZoneMode(e.currentTarget.value === "utc" ? "utc" : "local")}>
        <option value="local">local time</option>
        <option value="utc">UTC</option>
      </select>
    </label>
  );
}
