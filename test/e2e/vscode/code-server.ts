/**
 * Support for the end-to-end test in a real VS Code: code-server 4.100.3 (VS Code 1.100 in a
 * browser, installed by `scripts/install-code-server.sh` outside the repository's
 * dependencies) with the packaged `.vsix` installed, driven through Debian's Chromium by
 * `playwright-core`. Everything it writes goes to one temporary folder.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Frame, type Page } from "playwright-core";

/** The code-server version the install script installs and the test expects. */
export const CODE_SERVER_VERSION = "4.100.3";
const repo = (p: string) => fileURLToPath(new URL(`../../../${p}`, import.meta.url));

/** The install directory of `scripts/install-code-server.sh` (same defaults). */
export function codeServerDir(): string {
  const cache = process.env["XDG_CACHE_HOME"] || join(homedir(), ".cache");
  return process.env["QKIT_CODE_SERVER_DIR"] || join(cache, "qubes-kit", `code-server-${CODE_SERVER_VERSION}`);
}

export const CODE_SERVER_ENTRY = () => join(codeServerDir(), "node_modules", "code-server", "out", "node", "entry.js");
export const CHROMIUM = process.env["QKIT_CHROMIUM"] || "/usr/bin/chromium";
export const VSIX = repo("vscode-extension/qubes-kit-vscode.vsix");
/** The workspace the test opens (copied to a temporary folder first). */
export const WORKSPACE_FIXTURE = repo("test/e2e/vscode/workspace");

/** Why the test cannot run here, or `undefined` when everything it needs is installed. */
export function missing(): string | undefined {
  if (!existsSync(join(codeServerDir(), ".complete")) || !existsSync(CODE_SERVER_ENTRY())) {
    return `code-server ${CODE_SERVER_VERSION} is not installed in ${codeServerDir()}: run scripts/install-code-server.sh (it needs Debian's ripgrep and libkrb5-dev; \`--apt\` installs them as root)`;
  }
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing: install Debian's chromium (\`apt-get install -y chromium\`)`;
  if (!existsSync(VSIX)) return `${VSIX} is missing: run \`npm run package\` first`;
  return undefined;
}

/** Whether `buffer` is a whole zip archive (its end record and central directory are there). */
function wholeZip(buffer: Buffer): boolean {
  let eocd = buffer.length - 22;
  while (eocd >= 0 && buffer.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  if (eocd < 0) return false;
  const count = buffer.readUInt16LE(eocd + 10);
  let at = buffer.readUInt32LE(eocd + 16);
  for (let i = 0; i < count; i++) {
    if (at + 46 > buffer.length || buffer.readUInt32LE(at) !== 0x02014b50) return false;
    at += 46 + buffer.readUInt16LE(at + 28) + buffer.readUInt16LE(at + 30) + buffer.readUInt16LE(at + 32);
  }
  return true;
}

/**
 * A private copy of the packaged `.vsix`. Another test (`test/lsp/e2e-vscode-package.test.ts`)
 * may be packaging it again at this moment, so a copy that is not a whole archive is read again.
 */
async function copyVsix(to: string): Promise<void> {
  for (let attempt = 0; attempt < 60; attempt++) {
    const bytes = readFileSync(VSIX);
    if (wholeZip(bytes)) {
      writeFileSync(to, bytes);
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`${VSIX} is not a whole zip archive after 60 s: run \`npm run package\` again`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** A running code-server with the extension, a browser on its workbench, and the workspace copy. */
export interface Session {
  page: Page;
  workspace: string;
  /** What code-server printed (for failure messages). */
  log(): string;
  close(): Promise<void>;
}

/** User settings that keep the workbench quiet and predictable. */
const USER_SETTINGS = {
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.enableExperiments": false,
  "telemetry.telemetryLevel": "off",
  "extensions.autoCheckUpdates": false,
  "extensions.autoUpdate": false,
  "update.mode": "none",
  "security.workspace.trust.enabled": false,
  "editor.quickSuggestions": { other: false, comments: false, strings: false },
  "editor.hover.delay": 100,
  "files.autoSave": "off",
  "git.enabled": false,
};

/**
 * Installs the `.vsix` into a fresh code-server profile, starts it on a copy of the workspace,
 * and opens the workbench. `multiRoot`: a `.code-workspace` with two copies as folders,
 * `alpha` (its system model from `system-info.json`) and `beta` (no system model), each
 * with its own `.vscode/settings.json`.
 */
export async function startSession(options: { multiRoot?: boolean } = {}): Promise<Session> {
  const temp = mkdtempSync(join(tmpdir(), "qkit-vscode-e2e-"));
  const workspace = join(temp, "workspace");
  let open: string;
  if (options.multiRoot) {
    cpSync(WORKSPACE_FIXTURE, join(workspace, "alpha"), { recursive: true });
    cpSync(WORKSPACE_FIXTURE, join(workspace, "beta"), { recursive: true });
    writeFileSync(join(workspace, "beta", ".vscode", "settings.json"), JSON.stringify({ "qubesPolicy.system.source": "none" }, null, 2));
    const file = join(workspace, "two.code-workspace");
    writeFileSync(file, JSON.stringify({ folders: [{ path: "alpha" }, { path: "beta" }], settings: {} }, null, 2));
    open = `workspace=${encodeURIComponent(file)}`;
  } else {
    cpSync(WORKSPACE_FIXTURE, workspace, { recursive: true });
    open = `folder=${encodeURIComponent(workspace)}`;
  }
  const userData = join(temp, "user-data");
  const extensions = join(temp, "extensions");
  mkdirSync(join(userData, "User"), { recursive: true });
  writeFileSync(join(userData, "User", "settings.json"), JSON.stringify(USER_SETTINGS, null, 2));
  const config = join(temp, "config.yaml");
  writeFileSync(config, "auth: none\ncert: false\n");
  const vsix = join(temp, "qubes-kit-vscode.vsix");
  await copyVsix(vsix);

  const common = ["--config", config, "--user-data-dir", userData, "--extensions-dir", extensions];
  const env = { ...process.env, XDG_CONFIG_HOME: join(temp, "xdg-config"), XDG_DATA_HOME: join(temp, "xdg-data") };
  const install = spawnSync(process.execPath, [CODE_SERVER_ENTRY(), ...common, "--install-extension", vsix], { encoding: "utf8", env, timeout: 120_000 });
  if (install.status !== 0 || !/successfully installed/.test(install.stdout + install.stderr)) {
    rmSync(temp, { recursive: true, force: true });
    throw new Error(`code-server --install-extension failed (${install.status}):\n${install.stdout}\n${install.stderr}`);
  }

  const port = await freePort();
  let output = "";
  const server: ChildProcess = spawn(
    process.execPath,
    [
      CODE_SERVER_ENTRY(),
      ...common,
      "--auth", "none",
      "--bind-addr", `127.0.0.1:${port}`,
      "--disable-telemetry",
      "--disable-update-check",
      "--disable-workspace-trust",
      "--disable-getting-started-override",
      "--ignore-last-opened",
    ],
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  server.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  server.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const listening = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`code-server did not start listening in 60 s:\n${output}`)), 60_000);
    const check = () => {
      if (output.includes("HTTP server listening")) {
        clearTimeout(timer);
        resolve();
      }
    };
    server.stdout!.on("data", check);
    server.stderr!.on("data", check);
    server.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`code-server exited (${code}) before listening:\n${output}`));
    });
  });

  let browser: BrowserContext | undefined;
  const close = async () => {
    await browser?.close().catch(() => undefined);
    if (server.exitCode === null) {
      const exited = new Promise((r) => server.once("exit", r));
      server.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (server.exitCode === null) server.kill("SIGKILL");
    }
    rmSync(temp, { recursive: true, force: true });
  };
  try {
    await listening;
    browser = await chromium.launchPersistentContext(join(temp, "chromium"), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 900 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    const page = browser.pages()[0] ?? (await browser.newPage());
    await page.goto(`http://127.0.0.1:${port}/?${open}`, { timeout: 120_000, waitUntil: "domcontentloaded" });
    await page.locator(".monaco-workbench").waitFor({ timeout: 120_000 });
    await page.locator(".explorer-folders-view, .explorer-viewlet").first().waitFor({ timeout: 60_000 });
    return { page, workspace, log: () => output, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Opens a workspace file (`name`, or `folder/…/name` in a multi-root window) with Quick Open (Ctrl+P) and waits for its editor to be active. */
export async function openFile(page: Page, query: string): Promise<void> {
  // `folder/.../name`: the row of `name` whose description names `folder` (multi-root windows).
  const name = query.slice(query.lastIndexOf("/") + 1);
  const folder = query.includes("/") ? query.slice(0, query.indexOf("/")) : undefined;
  const active = page.locator(".editor-group-container.active .tabs-container .tab.active", { hasText: name }).first();
  // Quick Open searches with ripgrep; on a loaded machine the first search can come late.
  for (let attempt = 1; ; attempt++) {
    await page.keyboard.press("Escape");
    await page.keyboard.press("Control+P");
    const input = page.locator(".quick-input-widget input");
    await input.waitFor();
    await input.fill(name);
    try {
      const rows = page.locator(".quick-input-list .monaco-list-row", { hasText: name });
      const row = (folder ? rows.filter({ hasText: folder }) : rows).first();
      await row.waitFor({ timeout: 40_000 });
      await row.click();
      await active.waitFor({ timeout: 20_000 });
      break;
    } catch (e) {
      if (attempt === 3) throw new Error(`${name} did not open in an editor (Quick Open, 3 attempts): ${String(e)}`);
    }
  }
  await page.locator(".editor-group-container.active .monaco-editor .view-lines").first().waitFor();
}

/** Runs a command from the command palette (F1) by its title. */
export async function runCommand(page: Page, title: string): Promise<void> {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor();
  await input.fill(`>${title}`);
  await page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first().waitFor({ timeout: 30_000 });
  await page.keyboard.press("Enter");
}

/** Answers the open quick pick: types `value` and accepts the row labelled exactly `value`. */
export async function answerQuickPick(page: Page, title: string, value: string, label?: RegExp): Promise<void> {
  await page.locator(".quick-input-widget .quick-input-title", { hasText: title }).waitFor({ timeout: 30_000 });
  const input = page.locator(".quick-input-widget input");
  await input.fill(value);
  // The row whose label is `value` (or matches `label`, for labels longer than what is typed).
  const row = page.locator(".quick-input-list .monaco-list-row .label-name", { hasText: label ?? new RegExp(`^${value.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`) });
  await row.first().waitFor({ timeout: 30_000 });
  await row.first().click();
}

/** The visible text of the active editor (monaco renders lines with non-breaking spaces). */
export async function activeEditorText(page: Page): Promise<string> {
  const text = await page.locator(".editor-group-container.active .monaco-editor .view-lines").first().innerText();
  return text.replace(/\u00a0/g, " ");
}

/** The frame (of a webview's nested iframes, never the workbench's own page) that has an element matching `selector`. */
export async function webviewFrameWith(page: Page, selector: string, timeout = 60_000): Promise<Frame> {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    for (const frame of page.frames()) {
      if (frame === page.mainFrame()) continue;
      const found = await frame.evaluate((sel) => document.querySelector(sel) !== null, selector).catch(() => false);
      if (found) return frame;
    }
    await page.waitForTimeout(500);
  }
  throw new Error(`no webview frame has ${selector} after ${timeout} ms`);
}
