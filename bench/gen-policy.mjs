#!/usr/bin/env node
/**
 * gen-policy: generates a large synthetic qrexec policy, a system model and
 * a stream of requests, for the benchmarks and the differential tests.
 *
 *     node bench/gen-policy.mjs --rules 10000 [--services 200] [--domains 300]
 *         [--requests 100000] [--files 20] [--generic-rules 20] [--seed 1]
 *         [--out .bench-data/r10k] [--emit-oracle N]
 *
 * It follows the spirit of the shared `gen-policy.py` (same mix of tokens,
 * actions and parameters; see the policy spec, section 18) but uses its own
 * seeded PRNG, so its output is deterministic for a seed yet not
 * byte-identical to the Python generator's. It writes
 *
 *     OUT/policy.d/NN-gen-XX.policy    the rules, split over --files files
 *     OUT/policy.d/include/gen-common  a file loaded with `!include`
 *     OUT/policy.d/include/gen-svc     a file loaded with `!include-service` (R4.0 syntax)
 *     OUT/policy.d/99-catchall.policy  the generic `*` rules and `* * @anyvm @anyvm deny`
 *     OUT/system.json                  an `internal.GetSystemInfo` answer
 *     OUT/requests.jsonl               one request object per line
 *     OUT/oracle-input.jsonl           (with --emit-oracle N) one line for qrexec-oracle.py
 *
 * The module also exports {@link generate} so tests can build a policy in memory.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const TYPES_WEIGHTED = [
  ["AppVM", 70],
  ["StandaloneVM", 8],
  ["DispVM", 10],
  ["TemplateVM", 12],
];
const LABELS = {
  black: "0x595959",
  blue: "0x3874d8",
  gray: "0x555753",
  green: "0x5fa05e",
  orange: "0xf57900",
  purple: "0x9f389f",
  red: "0xcc0000",
  yellow: "0xedd400",
};
const N_TAGS = 24;
const N_ARGS = 12;

/**
 * A small, fast, seeded PRNG (sfc32, seeded through splitmix32), so that the
 * output depends only on the seed and not on the JavaScript engine.
 */
export class Rng {
  /** @param {number} seed */
  constructor(seed) {
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniform 32-bit unsigned integer. */
  u32() {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** A float in [0, 1). */
  random() {
    return this.u32() / 4294967296;
  }

  /** An integer in [0, n). */
  int(n) {
    return Math.floor(this.random() * n);
  }

  /** One element of a non-empty array. */
  choice(items) {
    return items[this.int(items.length)];
  }

  /** `k` distinct elements of an array, in the order drawn. */
  sample(items, k) {
    const pool = items.slice();
    const out = [];
    for (let i = 0; i < k && pool.length > 0; i++) out.push(pool.splice(this.int(pool.length), 1)[0]);
    return out;
  }

  /** A value from `[value, weight]` pairs. */
  weighted(pairs) {
    let total = 0;
    for (const [, w] of pairs) total += w;
    let x = this.random() * total;
    for (const [value, w] of pairs) {
      x -= w;
      if (x < 0) return value;
    }
    return pairs[pairs.length - 1][0];
  }

  /** A random version-4 UUID. */
  uuid() {
    const hex = [this.u32(), this.u32(), this.u32(), this.u32()].map((n) => n.toString(16).padStart(8, "0")).join("");
    const variant = ((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16);
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
  }
}

function makeSystem(rng, nDomains) {
  const domains = {};
  const names = [];
  const dvmTemplates = [];
  const prefix = { AppVM: "app", StandaloneVM: "sa", DispVM: "disp", TemplateVM: "tpl" };
  const allTags = Array.from({ length: N_TAGS }, (_, i) => `tag${i}`);
  const labels = Object.keys(LABELS).sort();
  for (let i = 0; i < nDomains - 1; i++) {
    const type = rng.weighted(TYPES_WEIGHTED);
    const name = `${prefix[type]}-${String(i).padStart(3, "0")}`;
    names.push(name);
    const label = rng.choice(labels);
    const isDvmTemplate = type === "AppVM" && rng.random() < 0.06;
    if (isDvmTemplate) dvmTemplates.push(name);
    domains[name] = {
      internal: rng.random() < 0.02 ? "1" : null,
      tags: rng.sample(allTags, rng.choice([0, 0, 1, 1, 2, 3])).sort(),
      type,
      template_for_dispvms: isDvmTemplate,
      default_dispvm: null,
      icon: `${type.toLowerCase().slice(0, -2)}vm-${label}`,
      label: LABELS[label],
      guivm: "dom0",
      relayvm: null,
      transport_rpc: null,
      power_state: rng.choice(["Running", "Running", "Halted", "Paused"]),
      uuid: rng.uuid(),
    };
  }
  if (dvmTemplates.length === 0) {
    const firstApp = names.find((n) => domains[n].type === "AppVM") ?? names[0];
    domains[firstApp].template_for_dispvms = true;
    dvmTemplates.push(firstApp);
  }
  for (const name of names) {
    if (domains[name].type !== "TemplateVM" && rng.random() < 0.9) domains[name].default_dispvm = rng.choice(dvmTemplates);
  }
  domains.dom0 = {
    internal: null,
    tags: [],
    type: "AdminVM",
    template_for_dispvms: false,
    default_dispvm: dvmTemplates[0],
    icon: "adminvm-black",
    label: LABELS.black,
    guivm: null,
    relayvm: null,
    transport_rpc: null,
    power_state: "Running",
    uuid: "00000000-0000-0000-0000-000000000000",
  };
  return { system: { domains }, names, dvmTemplates };
}

function genSource(rng, names, system) {
  const kind = rng.weighted([
    ["name", 50],
    ["tag", 15],
    ["type", 5],
    ["anyvm", 24],
    ["uuid", 2],
    ["dom0", 2],
    ["star", 1],
    ["dispvm-tpl", 1],
  ]);
  switch (kind) {
    case "name":
      return rng.choice(names);
    case "tag":
      return `@tag:tag${rng.int(N_TAGS)}`;
    case "type":
      return "@type:" + rng.choice(["AppVM", "TemplateVM", "DispVM", "StandaloneVM"]);
    case "anyvm":
      return "@anyvm";
    case "uuid":
      return "uuid:" + system.domains[rng.choice(names)].uuid;
    case "dom0":
      return rng.choice(["dom0", "@adminvm"]);
    case "star":
      return "*";
    default:
      return "@dispvm:" + rng.choice(names);
  }
}

function genTarget(rng, names, dvmTemplates) {
  const kind = rng.weighted([
    ["name", 45],
    ["tag", 8],
    ["type", 4],
    ["anyvm", 15],
    ["default", 10],
    ["dispvm", 5],
    ["dispvm-tpl", 5],
    ["dispvm-tag", 1],
    ["adminvm", 5],
    ["star", 2],
  ]);
  switch (kind) {
    case "name":
      return rng.choice(names);
    case "tag":
      return `@tag:tag${rng.int(N_TAGS)}`;
    case "type":
      return "@type:" + rng.choice(["AppVM", "TemplateVM", "StandaloneVM"]);
    case "anyvm":
      return "@anyvm";
    case "default":
      return "@default";
    case "dispvm":
      return "@dispvm";
    case "dispvm-tpl":
      return "@dispvm:" + rng.choice(dvmTemplates);
    case "dispvm-tag":
      return `@dispvm:@tag:tag${rng.int(N_TAGS)}`;
    case "adminvm":
      return rng.choice(["@adminvm", "dom0"]);
    default:
      return "*";
  }
}

function genRedirect(rng, names, dvmTemplates) {
  const kind = rng.weighted([
    ["name", 60],
    ["dispvm", 15],
    ["dispvm-tpl", 15],
    ["adminvm", 10],
  ]);
  if (kind === "name") return rng.choice(names);
  if (kind === "dispvm") return "@dispvm";
  if (kind === "dispvm-tpl") return "@dispvm:" + rng.choice(dvmTemplates);
  return rng.choice(["@adminvm", "dom0"]);
}

function genAction(rng, target, names, dvmTemplates) {
  const action = rng.weighted([
    ["allow", 45],
    ["deny", 35],
    ["ask", 20],
  ]);
  const params = [];
  if (action === "deny") {
    if (rng.random() < 0.2) params.push("notify=" + rng.choice(["yes", "no"]));
    return [action, params];
  }
  if ((target === "@default" && action === "allow") || rng.random() < 0.1) {
    params.push("target=" + genRedirect(rng, names, dvmTemplates));
  }
  if (action === "ask" && rng.random() < 0.4) params.push("default_target=" + genRedirect(rng, names, dvmTemplates));
  if (rng.random() < 0.1) params.push("user=" + rng.choice(["root", "user"]));
  if (rng.random() < 0.05) params.push("notify=" + rng.choice(["yes", "no"]));
  if (rng.random() < 0.05) params.push("autostart=" + rng.choice(["yes", "no"]));
  return [action, params];
}

function genRule(rng, services, names, system, dvmTemplates, generic = false) {
  const service = generic ? "*" : rng.choice(services);
  const argument = generic || rng.random() < 0.7 ? "*" : `+arg${rng.int(N_ARGS)}`;
  const source = genSource(rng, names, system);
  const target = genTarget(rng, names, dvmTemplates);
  const [action, params] = genAction(rng, target, names, dvmTemplates);
  return [service, argument, source, target, action, ...params].join("\t");
}

function genRequest(rng, services, names, dvmTemplates) {
  const service = rng.random() < 0.97 ? rng.choice(services) : "unknown.Svc";
  const argument = rng.random() < 0.6 ? "+" : `+arg${rng.int(N_ARGS + 2)}`;
  const source = rng.random() < 0.98 ? rng.choice(names) : "dom0";
  const kind = rng.weighted([
    ["name", 70],
    ["default", 10],
    ["dispvm", 5],
    ["dispvm-tpl", 5],
    ["adminvm", 5],
    ["missing", 5],
  ]);
  let target;
  if (kind === "name") target = rng.choice(names);
  else if (kind === "default") target = "";
  else if (kind === "dispvm") target = "@dispvm";
  else if (kind === "dispvm-tpl") target = "@dispvm:" + rng.choice(dvmTemplates);
  else if (kind === "adminvm") target = rng.choice(["dom0", "@adminvm"]);
  else target = `no-such-vm-${rng.int(1000)}`;
  return { service, argument, source, target };
}

/**
 * Generates a policy, a system and requests in memory.
 *
 * @param {object} [options]
 * @param {number} [options.rules=10000]  total rule lines, catch-all included
 * @param {number} [options.services=200]
 * @param {number} [options.domains=300]  qubes, dom0 included
 * @param {number} [options.requests=100000]
 * @param {number} [options.files=20]     numbered policy.d files
 * @param {number} [options.genericRules=20]  rules with service `*` before the catch-all
 * @param {number} [options.seed=1]
 * @returns {{files: Record<string,string>, system: {domains: Record<string, object>}, requests: object[], ruleLines: number}}
 *   `files` is keyed like the oracle's input: relative to `/etc/qubes/policy.d`.
 */
export function generate(options = {}) {
  const o = { rules: 10000, services: 200, domains: 300, requests: 100000, files: 20, genericRules: 20, seed: 1, ...options };
  const rng = new Rng(o.seed);
  const { system, names, dvmTemplates } = makeSystem(rng, o.domains);
  const services = Array.from({ length: o.services }, (_, i) => `svc${String(i).padStart(3, "0")}.Service`);

  const files = {};
  const nSpecific = Math.max(0, o.rules - o.genericRules - 3);
  const perFile = Math.max(1, Math.ceil(nSpecific / o.files));
  let made = 0;
  for (let f = 0; f < o.files; f++) {
    const lines = [`# generated file ${f} (seed ${o.seed})`];
    if (f === 0) {
      lines.push("!include include/gen-common");
      lines.push(`!include-service ${services[0]} * include/gen-svc`);
    }
    const count = Math.min(perFile, nSpecific - made);
    for (let i = 0; i < count; i++) lines.push(genRule(rng, services, names, system, dvmTemplates));
    made += count;
    files[`${String(10 + f).padStart(2, "0")}-gen-${String(f).padStart(2, "0")}.policy`] = lines.join("\n") + "\n";
  }
  files["include/gen-common"] = genRule(rng, services, names, system, dvmTemplates) + "\n";
  files["include/gen-svc"] = "$anyvm $default allow,target=dom0\n$tag:tag1 $anyvm ask\n";
  const generic = [];
  for (let i = 0; i < o.genericRules; i++) generic.push(genRule(rng, services, names, system, dvmTemplates, true));
  files["99-catchall.policy"] = [...generic, "*\t*\t@anyvm\t@anyvm\tdeny"].join("\n") + "\n";

  const requests = [];
  for (let i = 0; i < o.requests; i++) requests.push(genRequest(rng, services, names, dvmTemplates));
  let ruleLines = 0;
  for (const text of Object.values(files)) {
    for (const line of text.split("\n")) if (line && !line.startsWith("#") && !line.startsWith("!")) ruleLines++;
  }
  return { files, system, requests, ruleLines };
}

/**
 * Writes a generated policy to `out` (see the header comment for the layout).
 *
 * @param {string} out
 * @param {ReturnType<typeof generate>} generated
 * @param {{emitOracle?: number}} [options]
 */
export function writeGenerated(out, generated, options = {}) {
  const pdir = join(out, "policy.d");
  mkdirSync(join(pdir, "include"), { recursive: true });
  for (const name of readdirSync(pdir)) if (name.endsWith(".policy")) rmSync(join(pdir, name));
  for (const [name, text] of Object.entries(generated.files)) writeFileSync(join(pdir, name), text);
  writeFileSync(join(out, "system.json"), JSON.stringify(generated.system, null, 1));
  writeFileSync(join(out, "requests.jsonl"), generated.requests.map((r) => JSON.stringify(r) + "\n").join(""));
  if (options.emitOracle) {
    const line = { files: generated.files, system: generated.system, requests: generated.requests.slice(0, options.emitOracle) };
    writeFileSync(join(out, "oracle-input.jsonl"), JSON.stringify(line) + "\n");
  }
}

function parseArgs(argv) {
  const opts = { out: undefined, emitOracle: 0 };
  const numeric = { "--rules": "rules", "--services": "services", "--domains": "domains", "--requests": "requests", "--files": "files", "--generic-rules": "genericRules", "--seed": "seed", "--emit-oracle": "emitOracle" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--out") opts.out = argv[++i];
    else if (a in numeric) {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 0) throw new Error(`gen-policy: ${a} needs a non-negative integer`);
      opts[numeric[a]] = v;
    } else if (a === "--help" || a === "-h") {
      process.stdout.write("usage: node bench/gen-policy.mjs --rules N [--services N] [--domains N] [--requests N] [--files N] [--generic-rules N] [--seed N] [--out DIR] [--emit-oracle N]\n");
      process.exit(0);
    } else throw new Error(`gen-policy: unknown option ${a}`);
  }
  return opts;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const opts = parseArgs(process.argv.slice(2));
  const { out: outArg, emitOracle, ...genOpts } = opts;
  const out = outArg ?? join(".bench-data", `r${genOpts.rules ?? 10000}-s${genOpts.seed ?? 1}`);
  const generated = generate(genOpts);
  writeGenerated(out, generated, { emitOracle });
  process.stdout.write(
    JSON.stringify({
      out,
      rule_lines: generated.ruleLines,
      files: Object.keys(generated.files).length,
      domains: Object.keys(generated.system.domains).length,
      requests: generated.requests.length,
    }) + "\n",
  );
}
