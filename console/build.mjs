// Builds the console into dist/ (served by snapvold at /console/): one bundled, minified
// app.js from src/main.tsx, plus index.html and style.css (src/style.css followed by every
// src/styles/*.css in name order, so each part of the console keeps its rules in its own file). The new tree is written beside
// dist/ and swapped in with renames, so a running snapvold never serves a half-written build.
import { build } from "esbuild";
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "dist");
const next = join(here, "dist.next");
const old = join(here, "dist.old");

rmSync(next, { recursive: true, force: true });
rmSync(old, { recursive: true, force: true });
mkdirSync(next, { recursive: true });

await build({
  entryPoints: [join(here, "src/main.tsx")],
  outfile: join(next, "app.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2020"],
  minify: true,
  sourcemap: true,
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "linked",
  logLevel: "warning",
});
cpSync(join(here, "src/index.html"), join(next, "index.html"));
const styles = join(here, "src/styles");
const parts = [join(here, "src/style.css")];
if (existsSync(styles)) {
  for (const f of readdirSync(styles).filter((n) => n.endsWith(".css")).sort()) parts.push(join(styles, f));
}
writeFileSync(join(next, "style.css"), parts.map((p) => readFileSync(p, "utf8")).join("\n"));

if (existsSync(out)) renameSync(out, old);
renameSync(next, out);
rmSync(old, { recursive: true, force: true });
console.log(`console built into ${out}`);
