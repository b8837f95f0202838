// Builds the VS Code extension into `dist/`:
// - `dist/extension.cjs`: `src/extension.ts` bundled by esbuild (CommonJS, `vscode` external);
// - `dist/server.cjs`: the standalone language server bundle, copied from `lsp/dist/server.cjs`;
// - `dist/syntaxes/*.tmLanguage.json`: the TextMate grammars, copied from `grammars/`;
// - `dist/schemas/qubes-template.schema.json`: the JSON Schema of stack files (what
//   `qkit template schema` prints: `stackJsonSchema()` of the built language core), for the
//   `yamlValidation` contribution (editors with the YAML extension and without our server).
// Nothing in `dist/` needs `node_modules` at run time, so the `.vsix` ships without them.
import { build } from "esbuild";
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const dist = here("./dist/");

rmSync(dist, { recursive: true, force: true });
mkdirSync(here("./dist/syntaxes/"), { recursive: true });
mkdirSync(here("./dist/schemas/"), { recursive: true });

await build({
  entryPoints: [here("./src/extension.ts")],
  outfile: here("./dist/extension.cjs"),
  bundle: true,
  platform: "node",
  format: "cjs",
  // VS Code 1.90 and later run extensions and `module` servers on Node 20 (Electron 29);
  // the server bundle (`lsp/tsup.config.ts`) targets Node 20 too, hence `engines.vscode`.
  target: "node20",
  external: ["vscode"],
  minify: true,
  logLevel: "warning",
});

const server = here("../lsp/dist/server.cjs");
if (!existsSync(server)) {
  console.error("vscode-extension build: lsp/dist/server.cjs is missing; run `npm run build -w lsp` first");
  process.exit(1);
}
copyFileSync(server, here("./dist/server.cjs"));

const grammars = readdirSync(here("../grammars/")).filter((name) => name.endsWith(".tmLanguage.json"));
if (grammars.length === 0) {
  console.error("vscode-extension build: no grammars/*.tmLanguage.json found");
  process.exit(1);
}
for (const name of grammars) copyFileSync(here(`../grammars/${name}`), here(`./dist/syntaxes/${name}`));

const languageDist = here("../language/dist/index.js");
if (!existsSync(languageDist)) {
  console.error("vscode-extension build: language/dist/index.js is missing; run `npm run build -w language` first");
  process.exit(1);
}
const language = await import(pathToFileURL(languageDist).href);
if (typeof language.stackJsonSchema !== "function") {
  console.error("vscode-extension build: language/dist has no stackJsonSchema; rebuild it (`npm run build -w language`)");
  process.exit(1);
}
writeFileSync(here("./dist/schemas/qubes-template.schema.json"), JSON.stringify(language.stackJsonSchema(), null, 2) + "\n");

console.log(`vscode-extension: built dist/extension.cjs, copied dist/server.cjs and ${grammars.length} grammars, wrote the stack schema`);
