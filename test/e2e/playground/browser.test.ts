/**
 * The web playground in a real browser: Debian's Chromium driven by playwright-core opens
 * the built page (served on localhost by `playground/build.mjs`), where our language server
 * runs in a web worker. A user types a rule with a typo, sees the diagnostic, fixes it with
 * completion, formats, simulates a call, draws the decision table, adds a rule for a call, and opens the shared
 * link in a new page.
 *
 * Chromium is a system package (`apt-get install -y chromium`, which `.ci/run` does). In CI
 * (`CI` set) a missing browser fails the test with a message that says so; on a developer's
 * machine without it the test is reported as skipped with the same message, never silently.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatText, parseDocument } from "@qubes-kit/language";
import { decodeState } from "../../../playground/src/share.js";

const CHROMIUM = process.env["QKIT_CHROMIUM"] ?? "/usr/bin/chromium";
/** The flags of the brief: no network side traffic, no sandbox (CI runs as root), no GPU. */
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

function chromiumProblem(): string | undefined {
  const probe = spawnSync(CHROMIUM, ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) {
    return `${CHROMIUM} is not installed (or does not run): the playground browser test needs it; install it with \`apt-get install -y chromium\` (.ci/run does this)`;
  }
  return undefined;
}

const missing = chromiumProblem();
const skipWhy = !process.env["CI"] && missing ? `${missing.split(":")[0]}: the playground browser test is skipped here (CI always runs it)` : undefined;

interface Playground {
  buildPlayground(o?: { quiet?: boolean }): Promise<{ dist: string; sizes: Array<{ file: string; bytes: number }> }>;
  servePlayground(o?: { port?: number; host?: string }): Promise<Server>;
}

const repoPath = (p: string) => fileURLToPath(new URL(`../../../${p}`, import.meta.url));
let dist = "";
let server: Server | undefined;
let context: BrowserContext | undefined;
let base = "";
const profile = mkdtempSync(join(tmpdir(), "qkit-playground-"));
/** What the pages printed: errors fail the test. */
const pageErrors: string[] = [];
const offsite: string[] = [];

beforeAll(async () => {
  if (missing) return; // each test skips (outside CI) or fails (in CI) with the reason
  const pg = (await import("../../../playground/build.mjs" as string)) as Playground;
  dist = (await pg.buildPlayground({ quiet: true })).dist;
  server = await pg.servePlayground({ port: 0 });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS });
  context.on("weberror", (e) => pageErrors.push(e.error().message));
  context.on("request", (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith("data:")) offsite.push(r.url());
  });
}, 180_000);

afterAll(async () => {
  await context?.close();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  rmSync(profile, { recursive: true, force: true });
});

async function open(url: string): Promise<Page> {
  const page = await context!.newPage();
  // Every test starts from the link or the example, never from the work an earlier test left in
  // this profile's local storage (a failed test would otherwise fail the next one too).
  await page.addInitScript(() => {
    if (!sessionStorage.getItem("qkit-test-started")) {
      sessionStorage.setItem("qkit-test-started", "1");
      localStorage.clear();
    }
  });
  page.on("console", (m) => {
    if (m.type() === "error") pageErrors.push(m.text());
  });
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]", { state: "attached", timeout: 60_000 });
  await expect.poll(() => page.textContent("#status"), { timeout: 30_000 }).toMatch(/^system model: \d+ qubes$/);
  return page;
}

/** The text of editor line `n` (1-based) as rendered (Monaco draws spaces as no-break spaces). */
async function lineText(page: Page, n: number): Promise<string> {
  const lines = await page.$$eval(".monaco-editor .view-lines .view-line", (els) =>
    els.map((e) => ({ top: parseFloat((e as HTMLElement).style.top), text: e.textContent ?? "" })).sort((a, b) => a.top - b.top),
  );
  return (lines[n - 1]?.text ?? "").replace(/\u00a0/g, " ");
}

/** The page's state, read back from its own share link. */
async function shared(page: Page) {
  // Cleared first: a link made earlier must not be read as this one (the page makes it asynchronously).
  await page.$eval("#share-url", (e) => ((e as HTMLInputElement).value = ""));
  await page.click("#share");
  await expect.poll(() => page.inputValue("#share-url")).toContain("#v1=");
  const url = await page.inputValue("#share-url");
  const decoded = await decodeState(new URL(url).hash);
  if (!("state" in decoded)) throw new Error(`the share link does not decode: ${JSON.stringify(decoded)}`);
  return { url, state: decoded.state };
}

const TYPO = "qubes.Filecopy  *  vault  personal  alow";
const FIXED = "qubes.Filecopy  *  vault  personal  allow";

/** Skips the test, with its reason on stderr, when Chromium is missing outside CI; fails it in CI. */
function skipUnlessChromium(ctx: { skip(note?: string): void }): void {
  if (skipWhy) {
    process.stderr.write(`\n${skipWhy}\n`);
    ctx.skip(skipWhy);
  }
  if (missing) throw new Error(missing);
}

describe("the web playground in Chromium", () => {
  it("diagnoses a typo, fixes it with completion, formats, simulates, tables, and shares", async (ctx) => {
    skipUnlessChromium(ctx);
    const page = await open(base);

    // Before the edit, vault → personal is denied by `qubes.Filecopy * vault @anyvm deny`.
    await page.fill("#sim-service", "qubes.Filecopy");
    await page.fill("#sim-source", "vault");
    await page.fill("#sim-target", "personal");
    await page.click("#sim-run");
    await expect.poll(() => page.getAttribute("#sim-decision", "data-action"), { timeout: 30_000 }).toBe("deny");

    // Type a rule with a typo on a new first line.
    await page.click(".monaco-editor .view-lines");
    await page.keyboard.press("Control+Home");
    await page.keyboard.press("Enter");
    await page.keyboard.press("ArrowUp");
    await page.keyboard.type(TYPO, { delay: 5 });
    await page.keyboard.press("Escape");
    expect(await lineText(page, 1)).toBe(TYPO);

    // The diagnostic: in the problems list and as a squiggle in the editor.
    await expect.poll(() => page.textContent("#problems"), { timeout: 30_000 }).toMatch(/30-user\.policy:1:\d+ error\[[a-z-]+\]: .*alow/);
    // Monaco draws the squiggle a moment after the markers are set.
    await expect.poll(() => page.locator(".monaco-editor .squiggly-error").count(), { timeout: 30_000 }).toBeGreaterThan(0);
    // While the policy has an error, the engine refuses every call (the daemon would too).
    await page.click("#sim-run");
    await expect.poll(() => page.textContent("#sim-decision"), { timeout: 30_000 }).toMatch(/^deny \(PolicySyntaxError\)/);

    // Fix it with completion: erase the action, type `al`, pick `allow` from the list.
    await page.click(".monaco-editor .view-lines");
    await page.keyboard.press("Control+Home");
    await page.keyboard.press("End");
    for (let i = 0; i < 4; i++) await page.keyboard.press("Backspace");
    await page.keyboard.type("al", { delay: 5 });
    await page.keyboard.press("Control+Space");
    const item = page.locator(".suggest-widget .monaco-list-row", { hasText: "allow" }).first();
    await item.waitFor({ timeout: 30_000 });
    await item.click();
    expect(await lineText(page, 1)).toBe(FIXED);
    await expect.poll(() => page.textContent("#problems-count"), { timeout: 30_000 }).toBe("0");
    await expect.poll(() => page.locator(".monaco-editor .squiggly-error").count()).toBe(0);

    // Hover on the action shows the server's documentation.
    await page.keyboard.press("ArrowLeft");
    await page.keyboard.press("Control+K");
    await page.keyboard.press("Control+I");
    await expect.poll(() => page.locator(".monaco-hover:visible").first().textContent(), { timeout: 30_000 }).toMatch(/allow/);
    await page.keyboard.press("Escape");

    // Format: the page's text equals the core formatter's output.
    const before = (await shared(page)).state.files.find((f) => f.name === "30-user.policy")!.text;
    await page.click("#format");
    const expected = formatText(parseDocument(before));
    expect(expected).not.toBe(before);
    await expect.poll(async () => (await shared(page)).state.files.find((f) => f.name === "30-user.policy")!.text, { timeout: 30_000 }).toBe(expected);

    // Simulate the call again: the new first rule allows it, and the explanation says which rule.
    await page.click("#sim-run");
    await expect.poll(() => page.getAttribute("#sim-decision", "data-action"), { timeout: 30_000 }).toBe("allow");
    expect(await page.textContent("#sim-decision")).toBe("allow: call goes to personal (30-user.policy:1)");
    expect(await page.textContent("#sim-result .summary")).toMatch(/^allows .*personal/);

    // The decision table of qubes.Filecopy: vault → personal is allowed, vault → work denied.
    await page.fill("#table-service", "qubes.Filecopy");
    await page.click("#table-run");
    await page.waitForSelector("#decision-table", { timeout: 30_000 });
    const cell = async (source: string, target: string) =>
      page.$eval(
        "#decision-table",
        (table, [s, t]) => {
          const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
          const row = [...table.querySelectorAll("tbody tr")].find((tr) => tr.querySelector("th")?.textContent === s);
          return row?.children[heads.indexOf(t!)]?.textContent ?? null;
        },
        [source, target],
      );
    expect(await cell("vault", "personal")).toBe("allow");
    expect(await cell("vault", "work")).toBe("deny");
    expect(await cell("work", "vault")).toBe("ask → vault");

    // Share, then open the link in a new page: same files, same system model, same decision.
    const { url, state } = await shared(page);
    expect(state.files.map((f) => f.name)).toEqual(["30-user.policy", "include/admin-mgmt"]);
    const second = await open(url);
    expect(await second.textContent("#share-note")).toBe("opened the shared link");
    expect(await lineText(second, 1)).toBe(expected.split("\n")[0]);
    expect((await shared(second)).state).toEqual(state);
    await second.fill("#sim-service", "qubes.Filecopy");
    await second.fill("#sim-source", "vault");
    await second.fill("#sim-target", "personal");
    await second.click("#sim-run");
    await expect.poll(() => second.getAttribute("#sim-decision", "data-action"), { timeout: 30_000 }).toBe("allow");
    await second.close();

    // "Add a rule for this call": vault → work is denied; the button adds a rule that allows it, in the editor.
    await page.fill("#sim-target", "work");
    await page.click("#sim-run");
    await expect.poll(() => page.getAttribute("#sim-decision", "data-action"), { timeout: 30_000 }).toBe("deny");
    await page.locator("#sim-result button[data-add-rule]", { hasText: "add a rule: allow this call" }).click();
    await expect.poll(() => page.textContent("#add-rule-result"), { timeout: 30_000 }).toMatch(/^added qubes\.Filecopy\s+[*+]\s+vault\s+work\s+allow.* to 30-user\.policy:\d+$/);
    await expect.poll(() => page.getAttribute("#sim-decision", "data-action"), { timeout: 30_000 }).toBe("allow");
    // The shared state follows the editor after its own debounce: asked until it has the new rule.
    const sharedPolicy = async () => (await shared(page)).state.files.find((f) => f.name === "30-user.policy")!.text;
    await expect.poll(sharedPolicy, { timeout: 30_000 }).toMatch(/^qubes\.Filecopy\s+[*+]\s+vault\s+work\s+allow/m);
    const policyText = await sharedPolicy();
    expect(policyText.split("\n").filter((l) => /^qubes\.Filecopy\s+[*+]\s+vault\s+work\s+allow/.test(l))).toHaveLength(1);
    await page.close();

    expect(pageErrors).toEqual([]);
    expect(offsite).toEqual([]);
  }, 300_000);

  it("runs the shipped browser entry (lsp/dist/browser.js) as a module worker", async (ctx) => {
    skipUnlessChromium(ctx);
    // Served next to the page, so the worker is same-origin (the page's CSP allows only 'self').
    const entry = repoPath("lsp/dist/browser.js");
    if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build\` first (\`npm test\` builds it in pretest)`);
    copyFileSync(entry, join(dist, "lsp-browser.js"));
    const page = await open(base);
    const seen = await page.evaluate(async () => {
      const worker = new Worker("lsp-browser.js", { type: "module" });
      const uri = "file:///etc/qubes/policy.d/30-user.policy";
      const send = (m: object) => worker.postMessage({ jsonrpc: "2.0", ...m });
      return await new Promise<{ server?: string; diagnostics?: Array<{ code?: string; message: string }>; error?: string }>((resolve) => {
        const out: { server?: string; diagnostics?: Array<{ code?: string; message: string }> } = {};
        setTimeout(() => resolve({ ...out, error: "no diagnostics within 30 s" }), 30_000);
        worker.onerror = (e) => resolve({ error: e.message });
        worker.onmessage = (e: MessageEvent) => {
          const m = e.data as { id?: number; method?: string; result?: { serverInfo?: { name: string } }; params?: { uri: string; diagnostics: Array<{ code?: string; message: string }> } };
          if (m.id === 1) {
            out.server = m.result?.serverInfo?.name;
            send({ method: "initialized", params: {} });
            send({ method: "textDocument/didOpen", params: { textDocument: { uri, languageId: "qrexecpolicy", version: 1, text: "qubes.Filecopy  *  work  vault  alow\n" } } });
          } else if (m.method === "textDocument/publishDiagnostics" && m.params?.uri === uri && m.params.diagnostics.length) {
            out.diagnostics = m.params.diagnostics;
            resolve(out);
          } else if (m.id !== undefined && m.method) {
            send({ id: m.id, result: null }); // the server's own requests (registrations)
          }
        };
        send({ id: 1, method: "initialize", params: { processId: null, rootUri: null, capabilities: {} } });
      });
    });
    await page.close();
    expect(seen.error).toBeUndefined();
    expect(seen.server).toBe("qkit-lsp");
    expect(seen.diagnostics?.map((d) => `${d.code}: ${d.message}`)).toEqual(["invalid-action: invalid action: alow"]);
  }, 120_000);

  it("says why a damaged link opened the example, marks bad system JSON, and quick-fixes an include file", async (ctx) => {
    skipUnlessChromium(ctx);
    const page = await open(`${base}#v1=AAAA`);
    expect(await page.textContent("#share-note")).toBe("the link's data does not decompress: it was cut or changed (the page opened with its example) [link-not-deflate]");
    // The system model tab: a JSON error is marked and said, and the server is told there is no model.
    await page.click('.tab[data-file="system.json"]');
    await page.click(".monaco-editor .view-lines");
    await page.keyboard.press("Control+Home");
    await page.keyboard.type("x", { delay: 5 });
    await expect.poll(() => page.textContent("#system-problem"), { timeout: 30_000 }).toMatch(/^system\.json:1:1: not valid JSON: .*; fix it, the simulator uses no system model until then \[system-json-invalid\]$/);
    await expect.poll(() => page.textContent("#status"), { timeout: 30_000 }).toMatch(/^system model: the system model `[^`]*system\.json` is not valid JSON \([^)]*system\.json:1:1: expected a value\); make one with `qkit system snapshot` \[invalid-json\]$/);
    await page.keyboard.press("Backspace");
    await expect.poll(() => page.textContent("#status"), { timeout: 30_000 }).toMatch(/^system model: \d+ qubes$/);
    expect(await page.textContent("#system-problem")).toBe("");

    // A typo in the include file: its diagnostic, and the server's quick fix (Ctrl+.).
    await page.click('.tab[data-file="include/admin-mgmt"]');
    await page.click(".monaco-editor .view-lines");
    await page.keyboard.press("Control+End");
    await page.keyboard.press("Enter");
    await page.keyboard.type("admin.vm.List  *  vault  @adminvm  dney", { delay: 5 });
    await page.keyboard.press("Escape");
    await expect.poll(() => page.textContent("#problems"), { timeout: 30_000 }).toMatch(/include\/admin-mgmt:\d+:\d+ error\[invalid-action\]: invalid action: dney/);
    await page.keyboard.press("Control+.");
    const fix = page.locator(".action-widget .monaco-list-row.action", { hasText: "replace with `deny`" }).first();
    await fix.waitFor({ timeout: 30_000 });
    expect(await fix.getAttribute("class")).toContain("focused");
    await page.keyboard.press("Enter");
    // The count with the list, so a failure says which problem is left.
    await expect.poll(async () => `${await page.textContent("#problems-count")} ${await page.textContent("#problems")}`, { timeout: 30_000 }).toMatch(/^0 /);

    // "From cursor" fills the simulator from that rule (argument given without its `+`).
    await page.click("#sim-cursor");
    expect([await page.inputValue("#sim-service"), await page.inputValue("#sim-source"), await page.inputValue("#sim-target")]).toEqual(["admin.vm.List", "vault", "@adminvm"]);
    await page.fill("#sim-argument", "x");
    await page.click("#sim-run");
    await expect.poll(() => page.textContent("#sim-result .request"), { timeout: 30_000 }).toBe("admin.vm.List+x from vault to @adminvm");
    await page.close();
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
