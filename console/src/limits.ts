// What the server accepts, checked in the browser before a request is sent, so that every
// field can show its limit and its error while it is typed. The numbers are EC2's (and what
// snapvold enforces: src/catalog/catalog_records.h, src/api/ec2_context.cc); lengths are
// counted in Unicode characters, as the server counts them. Nothing here changes a value:
// a value past a limit is reported, never cut.

import type { Tag } from "./api/ec2";

export const kMaxTagKeyChars = 128;
export const kMaxTagValueChars = 256;
export const kMaxTagsPerResource = 50;
export const kMaxDescriptionChars = 255;
export const kMaxReasonChars = 1024;
/** Reserved key prefixes: EC2's (any letter case) and snapvol's own (lifecycle bookkeeping). */
export const kAwsPrefix = "aws:";
export const kSnapvolPrefix = "snapvol:";
/** System tags that say where a volume lives (docs/api.md): they do not count toward the 50. */
export const kUncountedTagKeys = ["snapvol:host", "snapvol:nbd"];

/** Characters as the server counts them (code points, not UTF-16 units). */
export function charCount(s: string): number {
  let n = 0;
  for (const _ of s) n += 1;
  return n;
}

/** The error of a text limited to `max` characters, or undefined when it fits. */
export function lengthError(what: string, value: string, max: number): string | undefined {
  const n = charCount(value);
  if (n <= max) return undefined;
  return `${what} is ${n} characters; the limit is ${max}. Shorten it by ${n - max}.`;
}

export function isSystemTagKey(key: string): boolean {
  return key.startsWith(kSnapvolPrefix);
}

export interface TagRowErrors {
  key?: string;
  value?: string;
}

export interface TagErrors {
  /** One entry per row, same order as the rows. */
  rows: TagRowErrors[];
  /** About the whole list (too many tags). */
  list?: string;
  /** True when anything at all is wrong (an empty key included). */
  any: boolean;
}

/** Checks tag rows as the server would, row by row. A row with a key and an empty value is a
 *  valid tag (EC2 allows empty values); a row without a key is an error, not skipped.
 *  `maxTags` is what this editor may hold (50 less any tags set by snapvol that it does not show). */
export function validateTags(tags: Tag[], maxTags = kMaxTagsPerResource): TagErrors {
  const firstRowOfKey = new Map<string, number>();
  const rows = tags.map((t, i): TagRowErrors => {
    const e: TagRowErrors = {};
    const keyChars = charCount(t.key);
    if (keyChars === 0) e.key = `Enter a key (1 to ${kMaxTagKeyChars} characters), or remove this tag.`;
    else if (keyChars > kMaxTagKeyChars) e.key = lengthError("The key", t.key, kMaxTagKeyChars);
    else if (t.key.slice(0, kAwsPrefix.length).toLowerCase() === kAwsPrefix)
      e.key = `Keys starting with “${t.key.slice(0, kAwsPrefix.length)}” are reserved for AWS.`;
    else if (isSystemTagKey(t.key)) e.key = `Keys starting with “${kSnapvolPrefix}” are reserved for snapvol.`;
    else {
      const first = firstRowOfKey.get(t.key);
      if (first !== undefined) e.key = `Tag ${first + 1} already has the key “${t.key}”. Each key can be used once.`;
      else firstRowOfKey.set(t.key, i);
    }
    const valueError = lengthError("The value", t.value, kMaxTagValueChars);
    if (valueError) e.value = valueError;
    return e;
  });
  const list =
    tags.length > maxTags
      ? `${tags.length} tags: the limit is ${kMaxTagsPerResource} per resource` +
        (maxTags < kMaxTagsPerResource ? ` (${kMaxTagsPerResource - maxTags} of them set by snapvol)` : "") +
        `. Remove ${tags.length - maxTags}.`
      : undefined;
  const any = list !== undefined || rows.some((r) => r.key !== undefined || r.value !== undefined);
  return { rows, list, any };
}

/** How many problems validateTags found (each row's key and value count apart). */
export function countTagProblems(e: TagErrors): number {
  return e.rows.reduce((n, r) => n + (r.key ? 1 : 0) + (r.value ? 1 : 0), 0) + (e.list ? 1 : 0);
}
