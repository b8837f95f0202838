#!/usr/bin/env node
/**
 * differential: random differential testing of our policy engine against the
 * real one (qubes-core-qrexec, through the shared oracle).
 *
 *     QREXEC_SRC=/tmp/qrexec-src node scripts/differential.mjs [--n 200] [--seed S]
 *         [--keep] [--no-save] [--no-minimise] [--show N] [--out DIR] [--oracle-only]
 *     QREXEC_SRC=/tmp/qrexec-src node scripts/differential.mjs --demo
 *
 * Needs: `QREXEC_SRC` pointing at a qubes-core-qrexec work tree, the shared
 * tools (`../shared/tools/qrexec-oracle.py` and `compare-decisions.py`, or
 * `QKIT_SHARED_TOOLS=DIR`), python3, and the built CLI (`npm run build`).
 *
 * 1. Generates N random cases in the conformance input format
 *    (`shared/conformance/README.md`): small random systems (missing keys
 *    now and then), 1–4 policy files with every token kind, action
 *    parameters, `!include`, `!include-dir`, legacy `!include-service` files,
 *    `!compat-4.0`, runtime files, ignored and badly named files, odd
 *    whitespace and line ends, and syntax errors of every class; mostly eval
 *    lines with several requests, some parse and lint lines, a few lines for
 *    the in-memory (`string`) loader.
 * 2. Runs the oracle on them (expected) and `qkit policy eval --cases -`
 *    (actual), and compares with `compare-decisions.py`.
 * 3. Saves each disagreeing case, minimised (only the disagreeing requests;
 *    then policy lines and files removed greedily while the disagreement
 *    stays), with the oracle's expected output, as new corpus lines in
 *    `test/fixtures/differential/cases.{in,out}.jsonl` (ids are
 *    `diff-<seed>-<n>`; a case already saved is not saved again).
 *
 * Exit status: 0 when everything agrees, 1 on disagreements, 2 when it cannot run.
 * `--keep` keeps the working directory (cases, expected and actual outputs).
 * `--oracle-only` generates the cases and runs only the oracle, printing how
 * the outcomes are spread (to check the generator's coverage).
 *
 * `--demo` instead rebuilds the expected decisions of the bundled demo:
 * it turns `examples/demo` (policy.d, system.json, transfers.json) into
 * `test/fixtures/demo/oracle.in.jsonl` (a parse line, an eval line with every
 * transfer, a lint line), runs the oracle into `oracle.out.jsonl`, and
 * compares our CLI on it when the CLI is built.
 */
import { spawnSync } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Rng } from "../bench/gen-policy.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

// ---------------------------------------------------------------------------
// Options and environment.

function parseArgs(argv) {
  const o = { n: 200, seed: undefined, keep: false, save: true, minimise: true, show: 5, out: join(ROOT, "test", "fixtures", "differential"), cli: join(ROOT, "sdk", "dist", "cli.js") };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 0) throw new Error(`differential: ${a} needs a non-negative integer`);
      return v;
    };
    if (a === "--n") o.n = num();
    else if (a === "--seed") o.seed = num();
    else if (a === "--keep") o.keep = true;
    else if (a === "--oracle-only") o.oracleOnly = true;
    else if (a === "--demo") o.demo = true;
    else if (a === "--no-save") o.save = false;
    else if (a === "--no-minimise" || a === "--no-minimize") o.minimise = false;
    else if (a === "--show") o.show = num();
    else if (a === "--out") o.out = resolve(argv[++i]);
    else if (a === "--cli") o.cli = resolve(argv[++i]);
    else if (a === "--help" || a === "-h") {
      const doc = readFileSync(fileURLToPath(import.meta.url), "utf8").split("*/")[0];
      process.stdout.write(doc.replace(/^#!.*\n\/\*\*\n/, "").replace(/^ \* ?/gm, "") + "\n");
      process.exit(0);
    } else throw new Error(`differential: unknown option ${a}`);
  }
  if (o.seed === undefined) o.seed = Math.floor(Date.now() / 1000) % 1_000_000;
  return o;
}

function findTools() {
  const candidates = [process.env.QKIT_SHARED_TOOLS, join(ROOT, "..", "shared", "tools")].filter(Boolean);
  for (const dir of candidates) {
    if (existsSync(join(dir, "qrexec-oracle.py")) && existsSync(join(dir, "compare-decisions.py"))) return dir;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Random cases.

const QUBE_POOL = ["work", "personal", "vault", "untrusted", "sys-net", "sys-firewall", "fedora-41", "debian-12", "default-dvm", "work-dvm", "disp1234", "test-vm1", "mgmt"];
const TAGS = ["t1", "t2", "net", "gpg"];
const TYPES = ["AppVM", "AppVM", "AppVM", "TemplateVM", "DispVM", "StandaloneVM"];
const SERVICES = ["qubes.Filecopy", "qubes.Gpg", "test.Svc"];
const ARGS = ["+", "+a", "+b"];
const DOM0_UUID = "00000000-0000-0000-0000-000000000000";

/** Characters whose Python `repr` is unusual (escaped or not, astral), for error messages that quote them. */
const ODD_NAMES = ["\u00e9", "\u00ad", "\u200b", "\u0301", "\u{1f600}", "\x7f", "\ue000", "\u{e0001}", "\x00", "'", '"', "\\", "\u0378", "\ufeff"];

/** Python `str.split()` separators that are not ASCII space/tab, for odd-whitespace cases. */
const ODD_SPACES = ["\u00a0", "\x1c", "\x1f", "\x85", "\v", "\f", "\u3000", "\u2028", "\u2003"];

class CaseGen {
  constructor(seed) {
    this.rng = new Rng(seed);
  }

  chance(p) {
    return this.rng.random() < p;
  }

  /** A chance of a deliberate error; only cases chosen to be faulty get any. */
  fault(p) {
    return this.faulty && this.chance(p);
  }

  pick(items) {
    return this.rng.choice(items);
  }

  system() {
    const r = this.rng;
    const n = 3 + r.int(10);
    const names = r.sample(QUBE_POOL, n);
    const domains = {};
    const dvms = [];
    for (const name of names) {
      const type = name === "default-dvm" || name === "work-dvm" ? "AppVM" : name.startsWith("disp") ? "DispVM" : name === "fedora-41" || name === "debian-12" ? "TemplateVM" : this.pick(TYPES);
      const dvm = type === "AppVM" && (name.endsWith("-dvm") || this.chance(0.15));
      if (dvm) dvms.push(name);
      domains[name] = {
        internal: this.chance(0.1) ? "1" : null,
        tags: r.sample(TAGS, r.int(3)).sort(),
        type,
        template_for_dispvms: dvm,
        default_dispvm: null,
        icon: "appvm-red",
        label: "0xcc0000",
        guivm: "dom0",
        relayvm: null,
        transport_rpc: null,
        power_state: this.pick(["Running", "Running", "Halted", "Paused"]),
        uuid: r.uuid(),
      };
    }
    for (const name of names) if (dvms.length && this.chance(0.75)) domains[name].default_dispvm = this.pick(dvms);
    if (this.chance(0.05) && names.length) domains[names[0]].default_dispvm = "ghost-dvm";
    if (!this.chance(0.05)) {
      domains.dom0 = { internal: null, tags: this.chance(0.2) ? ["t1"] : [], type: "AdminVM", template_for_dispvms: false, default_dispvm: dvms[0] ?? null, icon: "adminvm-black", label: "0x595959", guivm: null, relayvm: null, transport_rpc: null, power_state: "Running", uuid: DOM0_UUID };
    }
    // Qubes Air: a remote qube reached through a relay qube.
    if (this.chance(0.1) && names.length) {
      const relay = this.pick(names);
      domains["remote1"] = { internal: null, tags: [], type: "RemoteVM", template_for_dispvms: false, default_dispvm: null, icon: "remotevm-red", label: "0xcc0000", guivm: "dom0", relayvm: relay, transport_rpc: this.chance(0.9) ? "qubesair.SSHProxy" : null, power_state: "Running", uuid: r.uuid() };
      names.push("remote1");
    }
    // Now and then a key goes missing: the engine then crashes (EngineError) or copes.
    if (this.chance(0.04)) {
      const victim = this.pick(names);
      delete domains[victim][this.pick(["type", "tags", "power_state", "uuid", "template_for_dispvms"])];
    }
    return { domains, names, dvms };
  }

  qube(ctx, sys) {
    const r = this.rng;
    const name = () => (this.chance(0.9) && sys.names.length ? this.pick(sys.names) : this.pick(["ghost", "dom0", "$anyvm", "foo/bar"]));
    const kinds =
      ctx === "source"
        ? [["name", 40], ["anyvm", 25], ["tag", 10], ["type", 6], ["uuid", 3], ["dom0", 4], ["adminvm", 3], ["star", 4], ["dispvm-tpl", 2], ["bad", 3]]
        : ctx === "target"
          ? [["name", 35], ["anyvm", 18], ["tag", 7], ["type", 4], ["uuid", 3], ["dom0", 3], ["adminvm", 5], ["star", 3], ["default", 8], ["dispvm", 6], ["dispvm-tpl", 5], ["dispvm-tag", 2], ["bad", 2]]
          : [["name", 50], ["uuid", 4], ["dom0", 5], ["adminvm", 8], ["dispvm", 12], ["dispvm-tpl", 14], ["bad", 4]];
    switch (r.weighted(this.faulty ? kinds : kinds.filter(([k]) => k !== "bad"))) {
      case "name":
        return name();
      case "anyvm":
        return "@anyvm";
      case "tag":
        return "@tag:" + this.pick(TAGS);
      case "type":
        return "@type:" + this.pick(["AppVM", "TemplateVM", "DispVM", "AdminVM", "StandaloneVM"]);
      case "uuid": {
        if (this.chance(0.2)) return "uuid:" + DOM0_UUID;
        const q = sys.names.length ? sys.domains[this.pick(sys.names)] : undefined;
        return "uuid:" + (q?.uuid ?? "garbage");
      }
      case "dom0":
        return "dom0";
      case "adminvm":
        return "@adminvm";
      case "star":
        return "*";
      case "default":
        return "@default";
      case "dispvm":
        return "@dispvm";
      case "dispvm-tpl":
        return "@dispvm:" + (sys.dvms.length && this.chance(0.8) ? this.pick(sys.dvms) : name());
      case "dispvm-tag":
        return "@dispvm:@tag:" + this.pick(TAGS);
      default:
        if (this.chance(0.3)) return "@" + this.pick(ODD_NAMES) + "x";
        return this.pick(["@anyvm", "@tag:t1", "@tag:", "@type:", "@dispvm:", "@dispvm:@tag:", "@uuid:x", "@invalid", "@dispvm:@x", "", "@ANYVM"]);
    }
  }

  params(action, target, sys) {
    const out = [];
    if (action !== "deny" && ((target === "@default" && action === "allow" && !this.fault(0.15)) || this.chance(0.15))) out.push("target=" + this.qube("redirect", sys));
    if (action === "ask" && this.chance(0.3)) out.push("default_target=" + this.qube("redirect", sys));
    if (action !== "deny" && this.chance(0.1)) out.push("user=" + this.pick(["root", "user", "", "$x"]));
    if (this.chance(0.1)) out.push("notify=" + this.pick(["yes", "no"]));
    if (this.fault(0.03)) out.push(this.pick(["notify=true", "autostart=1"]));
    if (action !== "deny" && this.chance(0.1)) out.push("autostart=" + this.pick(["yes", "no", "no"]));
    if (this.fault(0.03)) out.push(this.pick(["foo=bar", "notify", "# comment", "target=", "notify=yes", "target=x=y"]));
    if (action === "deny" && this.fault(0.03)) out.push("target=work");
    return out;
  }

  sep() {
    if (this.chance(0.9)) return this.pick([" ", " ", "  ", "\t", " \t "]);
    return this.pick(ODD_SPACES);
  }

  join(words) {
    let s = words[0] ?? "";
    for (let i = 1; i < words.length; i++) s += this.sep() + words[i];
    if (this.chance(0.05)) s = this.pick([" ", "\t"]) + s;
    if (this.chance(0.05)) s += this.pick([" ", "\t", "\f"]);
    return s;
  }

  action() {
    return this.fault(0.02) ? this.pick(["Allow", "permit", "allow,target=work"]) : this.rng.weighted([["allow", 40], ["deny", 35], ["ask", 25]]);
  }

  serviceArg() {
    let service = this.chance(0.15) ? "*" : this.pick(SERVICES);
    let arg = this.chance(0.65) ? "*" : this.pick(ARGS);
    if (service === "*" && arg !== "*" && !this.fault(0.1)) arg = "*";
    if (this.fault(0.02)) service = this.pick(["qubes/Bad", "svc+x", "a:b", ...ODD_NAMES.map((c) => `svc${c}x`), `s\ue000v\u{1f600}c`, "b/a:d"]);
    if (this.fault(0.02)) arg = this.pick(["a", "+a/b", "+x!", ...ODD_NAMES.map((c) => `+${c}`), "+\u{1f600}\ue000", `+a${this.pick(ODD_NAMES)}`]);
    return [service, arg];
  }

  ruleLine(sys, syntax) {
    const action = this.action();
    const source = this.qube("source", sys);
    const target = this.qube("target", sys);
    let words = [source, target, action, ...this.params(action, target, sys)];
    if (syntax === "policy") words = [...this.serviceArg(), ...words];
    if (this.fault(0.02)) words = words.slice(0, this.rng.int(words.length));
    if (syntax === "service") {
      // Legacy syntax: `$` spellings and commas before the params, now and then.
      words = words.map((w) => (w.startsWith("@") && this.chance(0.4) ? "$" + w.slice(1) : w));
      if (words.length > 3 && this.chance(0.5)) words = [...words.slice(0, 2), words.slice(2).join(",")];
    }
    return this.join(words.filter((w) => w !== ""));
  }

  /** A file's text from logical lines, with random line ends and the odd BOM. */
  text(lines, allowOddEnds = true) {
    let out = "";
    for (const l of lines) out += l + (allowOddEnds && this.chance(0.04) ? this.pick(["\r\n", "\r"]) : "\n");
    if (this.chance(0.05)) out = out.replace(/\n$/, "");
    if (this.fault(0.02)) out = "\ufeff" + out;
    return out;
  }

  body(sys, syntax, n) {
    const lines = [];
    for (let i = 0; i < n; i++) {
      const k = this.rng.random();
      if (k < 0.08) lines.push(this.pick(["# a comment", "", "   ", "#", "  # indented comment"]));
      else lines.push(this.ruleLine(sys, syntax));
    }
    return lines;
  }

  /** One eval/parse/lint case for the daemon's file loader. */
  fileCase(id, sys) {
    const files = {};
    const nFiles = 1 + this.rng.int(4);
    const names = this.rng.sample(["10-a.policy", "20-admin.policy", "30-user.policy", "50-x.policy", "70-allow.policy", "90-default.policy"], nFiles).sort();
    for (const name of names) {
      const lines = this.body(sys, "policy", 2 + this.rng.int(8));
      const insert = (line) => lines.splice(this.rng.int(lines.length + 1), 0, line);
      if (this.chance(0.25)) {
        insert(`!include include/inc-${name.slice(0, 2)}`);
        if (!this.fault(0.1)) files[`include/inc-${name.slice(0, 2)}`] = this.text(this.body(sys, "policy", 1 + this.rng.int(4)));
      }
      if (this.chance(0.2)) {
        const [svc, arg] = this.serviceArg();
        insert(`!include-service ${svc} ${arg} include/legacy-${name.slice(0, 2)}`);
        const legacy = this.body(sys, "service", 1 + this.rng.int(3));
        if (this.chance(0.2)) legacy.push("$include:include/legacy-extra");
        files[`include/legacy-${name.slice(0, 2)}`] = this.text(legacy);
        files["include/legacy-extra"] = this.text(this.body(sys, "service", 1));
      }
      if (this.chance(0.08)) {
        insert("!include-dir include/dir1");
        files["include/dir1/10-d.policy"] = this.text(this.body(sys, "policy", 1 + this.rng.int(3)));
        if (this.chance(0.3)) files["include/dir1/README"] = "not a policy file\n";
        if (this.fault(0.2)) files["include/dir1/20-Bad.policy"] = "* * @anyvm @anyvm deny\n";
      }
      if (this.chance(0.06)) {
        insert("!compat-4.0");
        const svc = this.pick(SERVICES);
        files[`/etc/qubes-rpc/policy/${svc}`] = this.text(this.body(sys, "service", 1 + this.rng.int(2)));
        if (this.chance(0.6)) files[`/etc/qubes-rpc/policy/${svc}+a`] = this.text(this.body(sys, "service", 1 + this.rng.int(2)));
        if (this.chance(0.3)) files[`/etc/qubes-rpc/policy/${this.pick([`${svc}+`, `${svc}.rpmnew`, `.${svc}`, `${svc}+b.swp`, "bad name!"])}`] = this.text(this.body(sys, "service", 1));
      }
      if (this.chance(0.05)) {
        insert("!include /etc/qubes-rpc/custom-policy");
        files["/etc/qubes-rpc/custom-policy"] = this.text(this.body(sys, "policy", 1 + this.rng.int(2)));
      }
      if (this.chance(0.05)) {
        const p = this.pick(["include/sub/nested", "../policy.d/include/dotted", "include/./plain"]);
        insert(`!include ${p}`);
        const key = p === "include/sub/nested" ? p : p === "include/./plain" ? "include/plain" : "include/dotted";
        files[key] = this.text(this.body(sys, "policy", 1 + this.rng.int(2)));
      }
      if (this.fault(0.05)) insert(this.pick(["!include", "!include a b", "!bogus x", "!include-service a b", "!include include/self"]));
      if (lines.includes("!include include/self")) files["include/self"] = "!include include/self\n";
      files[name] = this.text(lines);
    }
    if (this.chance(0.08)) files[`/run/qubes/policy.d/${this.pick(names)}`] = this.text(this.body(sys, "policy", 1 + this.rng.int(3)));
    if (this.chance(0.05)) files[this.pick(["README", "40-x.policy.swp", ".hidden.policy", "40-x.rpmnew"])] = "garbage garbage\n";
    if (this.fault(0.03)) files["30-User.policy"] = "* * @anyvm @anyvm allow\n";
    if (this.chance(0.6)) files["99-catchall.policy"] = this.pick(["* * @anyvm @anyvm deny\n", "* * * * deny\n", "* * @anyvm @anyvm ask\n"]);

    const mode = this.rng.weighted([["eval", 82], ["parse", 13], ["lint", 5]]);
    const system = { domains: sys.domains };
    if (mode === "parse") return { id, mode, files, ...(this.chance(0.3) ? { emit_rules: true } : {}) };
    if (mode === "lint") {
      if (this.chance(0.3)) {
        // `qubes-policy-lint -i`: legacy service-syntax files.
        const legacy = {};
        for (let i = 0; i < 1 + this.rng.int(2); i++) legacy[`legacy-${i}`] = this.text(this.body(sys, "service", 1 + this.rng.int(4)));
        return { id, mode, include_service: true, files: legacy };
      }
      const lintFiles = {};
      for (const [k, v] of Object.entries(files)) if (!k.startsWith("/") && k.endsWith(".policy")) lintFiles[k] = v;
      return { id, mode, files: lintFiles };
    }
    const requests = [];
    const nReq = 4 + this.rng.int(12);
    for (let i = 0; i < nReq; i++) requests.push(this.request(sys));
    return { id, files, system, requests };
  }

  /** A case for the in-memory loader of qubes-policy-lint (`loader: "string"`). */
  stringCase(id, sys) {
    const lines = this.body(sys, "policy", 2 + this.rng.int(6));
    const files = {};
    if (this.chance(0.5)) {
      lines.splice(this.rng.int(lines.length + 1), 0, "!include inc");
      files.inc = this.text(this.body(sys, "policy", 1 + this.rng.int(3)), false);
    }
    let legacy;
    if (this.chance(0.25)) {
      lines.splice(this.rng.int(lines.length + 1), 0, "!compat-4.0");
      const svc = this.pick(SERVICES);
      legacy = { [svc]: this.text(this.body(sys, "service", 1 + this.rng.int(2)), false) };
      if (this.chance(0.5)) legacy[`${svc}+a`] = this.text(this.body(sys, "service", 1), false);
    }
    if (this.chance(0.2)) {
      lines.splice(this.rng.int(lines.length + 1), 0, this.pick(["!include include/x", "!include include/a/b", "!include-dir include", "!include missing"]));
      files["include/x"] = this.text(this.body(sys, "policy", 1), false);
    }
    files.__main__ = this.text(lines, false);
    const requests = [];
    for (let i = 0; i < 3 + this.rng.int(6); i++) requests.push(this.request(sys));
    return { id, loader: "string", files, ...(legacy ? { legacy } : {}), system: { domains: sys.domains }, requests };
  }

  request(sys) {
    const r = this.rng;
    const names = sys.names.length ? sys.names : ["work"];
    const service = this.chance(0.92) ? this.pick(SERVICES) : "other.Svc";
    const argument = this.pick(ARGS);
    const source = this.chance(0.93) ? this.pick(names) : this.pick(["dom0", "ghost"]);
    const kind = r.weighted([["name", 55], ["default", 12], ["dispvm", 8], ["dispvm-tpl", 6], ["adminvm", 6], ["uuid", 4], ["missing", 5], ["bad", 2], ["self", 2]]);
    let target;
    if (kind === "name") target = this.pick(names);
    else if (kind === "default") target = this.pick(["", "@default"]);
    else if (kind === "dispvm") target = "@dispvm";
    else if (kind === "dispvm-tpl") target = "@dispvm:" + (sys.dvms.length && this.chance(0.8) ? this.pick(sys.dvms) : this.pick(names));
    else if (kind === "adminvm") target = this.pick(["dom0", "@adminvm"]);
    else if (kind === "uuid") target = "uuid:" + (sys.domains[this.pick(names)]?.uuid ?? DOM0_UUID);
    else if (kind === "missing") target = "ghost";
    else if (kind === "bad") target = this.pick(["@tag:t1", "*", "@anyvm", "@dispvm:@tag:t1"]);
    else target = source;
    const req = { service, argument, source, target };
    if (this.chance(0.05)) {
      // The argument given inside the service name, split at the first `+` by the harness.
      delete req.argument;
      req.service = service + this.pick(["+a", "+", "+a+b", ""]);
    }
    const remote = sys.domains["remote1"];
    if (remote && this.chance(0.3)) {
      // Mostly a proper relay call; sometimes a wrong relay or an unknown or non-remote qube.
      req.requested_source = this.chance(0.7) ? "remote1" : this.pick(["ghost", names[0]]);
      if (this.chance(0.7) && typeof remote.relayvm === "string") req.source = remote.relayvm;
    }
    return req;
  }

  make(id) {
    // A fifth of the cases carry deliberate errors (a load error denies every request).
    this.faulty = this.chance(0.2);
    const sys = this.system();
    return this.chance(0.05) ? this.stringCase(id, sys) : this.fileCase(id, sys);
  }
}

// ---------------------------------------------------------------------------
// Running both sides.

/** JSON with every non-ASCII character escaped, as the conformance corpus is written. */
const asciiJson = (o) => JSON.stringify(o).replace(/[\u007f-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
const jsonl = (objs) => objs.map((o) => asciiJson(o) + "\n").join("");
const parseJsonl = (text) =>
  text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l));

function stripWarnings(o) {
  const out = {};
  for (const [k, v] of Object.entries(o)) if (k !== "warnings" && k !== "load_warnings") out[k] = v;
  if (Array.isArray(out.results)) out.results = out.results.map(stripWarnings);
  return out;
}

function runOracle(tools, input) {
  const r = spawnSync("python3", [join(tools, "qrexec-oracle.py"), "--compact"], { input, encoding: "utf8", maxBuffer: 256 << 20, env: { ...process.env, PYTHONHASHSEED: "0" } });
  if (r.status !== 0) throw new Error(`oracle failed (exit ${r.status}): ${(r.stderr || "").trim().split("\n").pop()}`);
  return parseJsonl(r.stdout).map(stripWarnings);
}

const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function runOurs(cli, input) {
  let r;
  let out = "";
  // A concurrent `npm run build` briefly removes dist/: wait for it rather than fail.
  for (let attempt = 0; attempt < 6; attempt++) {
    if (attempt > 0) sleep(3000);
    r = spawnSync(process.execPath, [cli, "policy", "eval", "--cases", "-"], { input, encoding: "utf8", maxBuffer: 256 << 20 });
    out = r.stdout ?? "";
    if (out.trim() !== "") break;
  }
  if (out.trim() === "") throw new Error(`qkit policy eval --cases failed (exit ${r.status}): ${(r.stderr || "").trim().split("\n").slice(0, 3).join(" | ")}`);
  return parseJsonl(out);
}

/** Runs compare-decisions.py; returns the disagreeing unit labels (`id` or `id#k`) and the summary text. */
function compare(tools, dir, expected, actual, show, input) {
  const e = join(dir, "expected.out.jsonl");
  const a = join(dir, "actual.out.jsonl");
  const i = join(dir, "cases.in.jsonl");
  writeFileSync(e, jsonl(expected));
  writeFileSync(a, jsonl(actual));
  writeFileSync(i, jsonl(input));
  const r = spawnSync("python3", [join(tools, "compare-decisions.py"), e, a, "--show", "1000000", "--input", i], { encoding: "utf8", maxBuffer: 256 << 20 });
  const text = r.stdout ?? "";
  const labels = [...text.matchAll(/^--- (\S+)  \[/gm)].map((m) => m[1]);
  const agree = (text.match(/^agree: .*$/m) ?? ["agree: ?"])[0];
  // A shortened listing for the console: header, field counts and the first `show` differences.
  const blocks = text
    .split("\n")
    .filter((l) => !l.startsWith("agree: ") && !/^\.\.\. \d+ more differences$/.test(l))
    .join("\n")
    .split(/^(?=--- )/m);
  const head = blocks[0];
  const shown = blocks.slice(1, 1 + show).join("");
  return { labels, agree, listing: head + shown, status: r.status };
}

function disagreeingUnits(labels) {
  const byId = new Map();
  for (const label of labels) {
    const hash = label.lastIndexOf("#");
    const id = hash >= 0 ? label.slice(0, hash) : label;
    const idx = hash >= 0 ? Number(label.slice(hash + 1)) : undefined;
    if (!byId.has(id)) byId.set(id, []);
    if (idx !== undefined) byId.get(id).push(idx);
  }
  return byId;
}

// ---------------------------------------------------------------------------
// Minimising.

/** Candidate reductions of a case: fewer requests, files or lines. */
function* reductions(c) {
  const files = c.files ?? {};
  if (Array.isArray(c.requests) && c.requests.length > 1) {
    for (let i = 0; i < c.requests.length; i++) yield { ...c, requests: c.requests.filter((_, j) => j !== i) };
  }
  for (const name of Object.keys(files)) {
    if (name === "__main__") continue;
    const rest = { ...files };
    delete rest[name];
    yield { ...c, files: rest };
  }
  // Chunks of lines, largest first (a ddmin-like order: big cuts are tried before single lines).
  const split = Object.entries(files).map(([name, text]) => [name, text.split(/(?<=\n)/)]);
  const longest = Math.max(0, ...split.map(([, lines]) => lines.length));
  for (let size = 2 ** Math.floor(Math.log2(Math.max(1, longest - 1))); size >= 1; size = Math.floor(size / 2)) {
    for (const [name, lines] of split) {
      if (lines.length <= size) continue;
      for (let start = 0; start < lines.length; start += size) {
        yield { ...c, files: { ...files, [name]: lines.filter((_, j) => j < start || j >= start + size).join("") } };
      }
    }
  }
  if (c.system?.domains) {
    for (const q of Object.keys(c.system.domains)) {
      const used = JSON.stringify({ files: c.files, requests: c.requests }).includes(q);
      if (used) continue;
      const domains = { ...c.system.domains };
      delete domains[q];
      yield { ...c, system: { domains } };
    }
  }
}

/**
 * Greedy minimisation: each round tries every one-step reduction of the case
 * in one batch (one oracle run, one run of ours, one comparison) and keeps
 * the first that still disagrees, until none does or the round limit is hit.
 */
function minimise(tools, cli, dir, c, maxRounds = 60) {
  let current = c;
  for (let round = 0; round < maxRounds; round++) {
    const candidates = [...reductions(current)].map((x, k) => ({ ...x, id: `${c.id}~${k}` }));
    if (candidates.length === 0) break;
    let expected;
    let actual;
    try {
      expected = runOracle(tools, jsonl(candidates));
      actual = runOurs(cli, jsonl(candidates));
    } catch (err) {
      if (process.env.QKIT_DIFF_DEBUG) {
        writeFileSync(join(dir, "failed-round.in.jsonl"), jsonl(candidates));
        process.stderr.write(`minimise ${c.id}: round ${round}: ${err instanceof Error ? err.message : String(err)} (input in ${dir}/failed-round.in.jsonl)\n`);
      }
      break;
    }
    const usable = new Set(expected.filter((e) => e.error !== "OracleInputError").map((e) => e.id));
    const { labels } = compare(tools, dir, expected, actual, 0, candidates);
    const bad = disagreeingUnits(labels);
    const next = candidates.find((x) => bad.has(x.id) && usable.has(x.id));
    if (process.env.QKIT_DIFF_DEBUG) process.stderr.write(`minimise ${c.id}: round ${round}: ${candidates.length} candidates, ${bad.size} disagree, next ${next?.id ?? "none"}\n`);
    if (!next) break;
    current = next;
  }
  return { ...current, id: c.id };
}

// ---------------------------------------------------------------------------
// The demo's expected decisions.

function readTree(dir, prefix = "") {
  const out = {};
  for (const entry of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) Object.assign(out, readTree(dir, rel));
    else if (entry.isFile()) out[rel] = readFileSync(join(dir, rel), "utf8");
  }
  return out;
}

function demo(tools, o) {
  const dir = join(ROOT, "examples", "demo");
  const files = Object.fromEntries(Object.entries(readTree(join(dir, "policy.d"))).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const system = JSON.parse(readFileSync(join(dir, "system.json"), "utf8"));
  const transfers = JSON.parse(readFileSync(join(dir, "transfers.json"), "utf8"));
  const requests = transfers.map((t) => ({ service: t.service, argument: t.argument ?? "+", source: t.source, target: t.target ?? "" }));
  const lintFiles = Object.fromEntries(Object.entries(files).filter(([k]) => k.endsWith(".policy")));
  const cases = [
    { id: "demo-parse", mode: "parse", files, emit_rules: true },
    { id: "demo-transfers", files, system, requests },
    { id: "demo-lint", mode: "lint", files: lintFiles },
  ];
  const expected = runOracle(tools, jsonl(cases));
  for (const e of expected) if (e.ok === false && e.error !== undefined) process.stdout.write(`demo: ${e.id}: the real engine says ${e.error}: ${e.message}\n`);
  const out = join(ROOT, "test", "fixtures", "demo");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "oracle.in.jsonl"), jsonl(cases));
  writeFileSync(join(out, "oracle.out.jsonl"), jsonl(expected));
  process.stdout.write(`demo: wrote ${join(out, "oracle.in.jsonl")} and oracle.out.jsonl (${requests.length} transfers)\n`);
  if (!existsSync(o.cli)) return 0;
  const work = mkdtempSync(join(os.tmpdir(), "qkit-differential-"));
  try {
    const result = compare(tools, work, expected, runOurs(o.cli, jsonl(cases)), o.show, cases);
    process.stdout.write(result.listing + result.agree + "\n");
    return result.labels.length === 0 ? 0 : 1;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------

function main() {
  const o = parseArgs(process.argv.slice(2));
  const tools = findTools();
  if (!process.env.QREXEC_SRC || !tools) {
    process.stderr.write("differential: needs QREXEC_SRC (a qubes-core-qrexec work tree) and the shared tools (../shared/tools or QKIT_SHARED_TOOLS) [differential-unavailable]\n");
    return 2;
  }
  if (o.demo) return demo(tools, o);
  if (!o.oracleOnly && !existsSync(o.cli)) {
    process.stderr.write(`differential: ${o.cli} is missing; run npm run build first [differential-unavailable]\n`);
    return 2;
  }
  const work = mkdtempSync(join(os.tmpdir(), "qkit-differential-"));
  try {
    const gen = new CaseGen(o.seed);
    const cases = [];
    for (let k = 0; k < o.n; k++) cases.push(gen.make(`diff-${o.seed}-${String(k).padStart(4, "0")}`));
    process.stdout.write(`differential: seed ${o.seed}, ${cases.length} cases\n`);

    const expectedAll = runOracle(tools, jsonl(cases));
    if (o.oracleOnly) {
      writeFileSync(join(work, "cases.in.jsonl"), jsonl(cases));
      writeFileSync(join(work, "expected.out.jsonl"), jsonl(expectedAll));
      const spread = {};
      const count = (r) => {
        const k = r.ok ? (r.action ?? (r.rules !== undefined ? "parse-ok" : "lint")) : `${r.error}${r.stage ? "@" + r.stage : ""}`;
        spread[k] = (spread[k] ?? 0) + 1;
      };
      for (const e of expectedAll) (Array.isArray(e.results) ? e.results : [e]).forEach(count);
      for (const [k, v] of Object.entries(spread).sort((a, b) => b[1] - a[1])) process.stdout.write(`  ${k.padEnd(36)} ${v}\n`);
      return 0;
    }
    // Cases the oracle cannot take (a generator slip) are dropped.
    const valid = new Set(expectedAll.filter((e) => e.error !== "OracleInputError").map((e) => e.id));
    const input = cases.filter((c) => valid.has(c.id));
    if (input.length < cases.length) process.stdout.write(`(${cases.length - input.length} case(s) dropped: the oracle could not take them)\n`);
    const expected = expectedAll.filter((e) => valid.has(e.id));
    const actual = runOurs(o.cli, jsonl(input));
    const result = compare(tools, work, expected, actual, o.show, input);
    process.stdout.write(result.listing);
    process.stdout.write(`${result.agree}\n`);

    const bad = disagreeingUnits(result.labels);
    if (bad.size === 0) return 0;
    process.stdout.write(`${bad.size} disagreeing case(s)\n`);
    if (o.save) {
      mkdirSync(o.out, { recursive: true });
      const inFile = join(o.out, "cases.in.jsonl");
      const outFile = join(o.out, "cases.out.jsonl");
      const known = new Set(existsSync(inFile) ? parseJsonl(readFileSync(inFile, "utf8")).map((c) => c.id) : []);
      let saved = 0;
      for (const c of input) {
        if (!bad.has(c.id) || known.has(c.id)) continue;
        let small = c;
        const idx = bad.get(c.id);
        if (Array.isArray(c.requests) && idx.length > 0) small = { ...c, requests: idx.map((k) => c.requests[k]) };
        if (o.minimise && bad.size <= 25) {
          const minDir = join(work, "minimise", c.id);
          mkdirSync(minDir, { recursive: true });
          small = minimise(tools, o.cli, minDir, small);
        }
        const [exp] = runOracle(tools, jsonl([small]));
        appendFileSync(inFile, asciiJson(small) + "\n");
        appendFileSync(outFile, asciiJson(exp) + "\n");
        saved++;
      }
      process.stdout.write(`saved ${saved} case(s) to ${inFile} (with the oracle's answers in cases.out.jsonl)\n`);
    }
    return 1;
  } finally {
    if (o.keep) process.stdout.write(`kept the working directory ${work}\n`);
    else rmSync(work, { recursive: true, force: true });
  }
}

try {
  process.exitCode = main();
} catch (err) {
  process.stderr.write(`differential: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 2;
}
