#!/usr/bin/env node
// The `qkit` command as npm links it (node_modules/.bin/qkit, `npx qkit`).
// It is committed (npm links bins at install time, before anything is built)
// and only starts the built CLI, `../dist/cli.js`; before a build it says so.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const cli = new URL("../dist/cli.js", import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  const root = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");
  process.stderr.write(`qkit: not built yet: ${fileURLToPath(cli)} is missing; run \`npm run build\` in ${root} first [not-built]\n`);
  process.exit(1);
}
const { runAsProgram } = await import(cli.href);
runAsProgram();
