/**
 * Simulator fidelity on call sequences nobody wrote by hand: random but
 * plausible Admin API calls (the differential fuzzer's generator), sent to the
 * real qubesd once and recorded (`test/fixtures/sim/fidelity/`, see its
 * README), are replayed here over a real Unix socket against a fresh
 * simulator. Every reply must be the recorded one, after the same
 * normalisation the fuzzer applies to both sides (generated uuids, disposable
 * names, tokens and host-dependent numbers renamed in order of appearance).
 *
 * A call the simulator is known to answer differently is listed, with the
 * reason, in its fixture's `known` map; the test checks that each of those
 * still differs, so a fix has to remove its note.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GLOBAL_PROPERTIES, QUBE_PROPERTIES, propertyHelp } from "@qubes-kit/language";
import { Simulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { FIXTURES, call, openStream, tmpDir } from "./sim-helpers.js";

/** One generated call; `{uuid:NAME}` and `{disp:K}` are resolved against the server. */
interface GenCall {
  method: string;
  arg: string;
  src: string;
  dtype: string;
  dest: string;
  payload: string;
  raw?: string;
}
/** `[kind, exception type, message, payload]`, normalised. */
type Reply = [string, string, string, string];
interface Fixture {
  /** The generator's seed; `null` for the probes (requests of `probes.txt`). */
  seed: number | null;
  setup: string[];
  known: Record<string, string>;
  calls: Array<{ request: GenCall; reply: Reply; frames?: string[] }>;
  /** Event recordings: the stream opened before the calls, and its first frames. */
  subscription?: { method: string; raw: string };
  first_frames?: string[];
}

const dir = path.join(FIXTURES, "sim", "fidelity");
const files = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith(".json.gz"))
  .sort();
const load = (f: string): Fixture => JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(dir, f))).toString("utf8"));
const latin1 = (s: string): Buffer => Buffer.from(s, "latin1");
const utf8 = new TextDecoder("utf-8");

/** The fuzzer's `parse`. */
function parse(data: Buffer): Reply {
  if (data.length === 0) return ["empty", "", "", ""];
  const head = data.subarray(0, 2).toString("latin1");
  if (head === "0\0") return ["ok", "", "", utf8.decode(data.subarray(2))];
  if (head === "2\0") {
    const parts = data.subarray(2).toString("latin1").split("\0");
    const dec = (s: string) => utf8.decode(latin1(s));
    return ["exc", dec(parts[0]!), parts.length > 2 ? dec(parts[2]!) : "<malformed>", ""];
  }
  if (head === "1\0") return ["event", "", "", utf8.decode(data.subarray(2)).split("\0\0")[0]!];
  return ["garbage", "", "", data.subarray(0, 200).toString("latin1")];
}

const UUID_RE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
const DISP_RE = /\bdisp[0-9]{1,4}\b/g;
const TOKEN_RE = /\b[0-9a-f]{32,64}\b/g;
const IP138_RE = /\b10\.138\.[0-9]{1,3}\.[0-9]{1,3}\b/g;
const DISPID_RE = /(dispid default=\w+ type=int )([0-9]+)/g;
const DEVATTR_RE = /([^\s=]+)='((?:[^'\\]|\\.)*)'/g;

/** The fuzzer's `Server`: one side's renaming state. */
class Side {
  readonly uuidNames = new Map<string, string>();
  readonly disps: string[] = [];
  /** Replies of `admin.vm.volume.CloneFrom`, for `{token:K}` (probes only). */
  readonly tokens: string[] = [];
  private readonly renames = new Map<string, Map<string, string>>();
  constructor(readonly socket: string) {}

  async refreshUuids(): Promise<void> {
    const [k, , , text] = parse(await call(this.socket, latin1("admin.vm.List+ dom0 name dom0\0")));
    if (k !== "ok") return;
    for (const line of text.split(/\r\n|\n|\r/)) {
      const m = /^(\S+) .*uuid=(\S+)/.exec(line);
      if (m) this.uuidNames.set(m[2]!, m[1]!);
    }
  }

  private async resolve(s: string): Promise<string> {
    s = s.replace(/\{disp:(\d+)\}/g, (_, k: string) => this.disps[Number(k)] ?? "dispnone");
    s = s.replace(/\{token:(\d+)\}/g, (_, k: string) => this.tokens[Number(k)] ?? "notoken");
    for (const m of [...s.matchAll(/\{uuid:([^}]*)\}/g)]) {
      const find = () => [...this.uuidNames].find(([, n]) => n === m[1])?.[0];
      let u = find();
      if (u === undefined) {
        await this.refreshUuids();
        u = find();
      }
      s = s.replace(m[0], `uuid:${u ?? "12345678-1234-4234-8234-123456789abc"}`);
    }
    return s;
  }

  async raw(c: GenCall): Promise<Buffer> {
    if (c.raw !== undefined) return latin1(await this.resolve(c.raw));
    const hdr = `${c.method}+${await this.resolve(c.arg)} ${c.src} ${c.dtype} ${await this.resolve(c.dest)}`;
    return Buffer.concat([latin1(hdr), Buffer.from([0]), latin1(await this.resolve(c.payload))]);
  }

  private rename(kind: string, value: string): string {
    let m = this.renames.get(kind);
    if (!m) this.renames.set(kind, (m = new Map()));
    if (!m.has(value)) m.set(value, `<${kind}#${m.size}>`);
    return m.get(value)!;
  }

  async normalise(method: string, text: string): Promise<string> {
    if (!text) return text;
    const uuids = text.match(UUID_RE) ?? [];
    if (uuids.length) {
      if (uuids.some((u) => !this.uuidNames.has(u))) await this.refreshUuids();
      text = text.replace(UUID_RE, (u) => (this.uuidNames.has(u) ? `<uuid:${this.uuidNames.get(u)}>` : this.rename("uuid", u)));
    }
    text = text.replace(DISP_RE, (d) => (this.disps.includes(d) ? `<disp#${this.disps.indexOf(d)}>` : this.rename("disp", d)));
    text = text.replace(TOKEN_RE, (t) => this.rename("tok", t));
    text = text.replace(/ at 0x[0-9a-f]+/g, " at 0x<addr>");
    text = text.replace(IP138_RE, (ip) => this.rename("ip138", ip));
    text = text.replace(DISPID_RE, (_, pre: string, id: string) => pre + this.rename("dispid", id));
    if (method === "admin.vm.List" && text.includes("<disp")) {
      const ls = text.split("\n");
      text = [...ls.filter((l) => !l.startsWith("<disp")), ...ls.filter((l) => l.startsWith("<disp")).sort()].join("\n");
    }
    if (method === "admin.vm.volume.CloneFrom" && /^[A-Za-z0-9]{32}$/.test(text.trim())) text = this.rename("clonetoken", text.trim());
    if (method === "admin.vm.CurrentState") text = text.replace(/cputime=[0-9]+/g, "cputime=<n>");
    if (method === "admin.pool.Info" || method === "admin.pool.UsageDetails") text = text.replace(/^((?:data_)?(?:size|usage))=[0-9]+$/gm, "$1=<n>");
    if (/^admin\.vm\.device\.[^.]+\.(Available|Assigned|Attached)$/.test(method)) {
      text = text
        .split("\n")
        .map((line) => {
          const sp = line.indexOf(" ");
          const head = sp < 0 ? line : line.slice(0, sp);
          const rest = sp < 0 ? "" : line.slice(sp + 1);
          if (!rest) return line;
          const attrs = [...rest.matchAll(DEVATTR_RE)].map((m) => [m[1]!, m[2]!] as const);
          attrs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
          return `${head} ${attrs.map(([k, v]) => `${k}='${v}'`).join(" ")}`;
        })
        .join("\n");
    }
    return text;
  }

  /** Sends one call; keeps the disposable bookkeeping of the fuzzer's `run_pair`. */
  async send(c: GenCall): Promise<Reply> {
    const p = parse(await call(this.socket, await this.raw(c)));
    if (c.method === "admin.vm.volume.CloneFrom" && p[0] === "ok") this.tokens.push(p[3].trim());
    if (c.method === "admin.vm.CreateDisposable" && p[0] === "ok") {
      const out = p[3].trim();
      if (/^disp[0-9]{1,4}$/.test(out)) this.disps.push(out);
      else if (p[3].startsWith("uuid:")) {
        await this.refreshUuids();
        const n = this.uuidNames.get(p[3].slice(5).trim());
        if (n) this.disps.push(n);
      }
    }
    return [p[0], p[1], await this.normalise(c.method, p[2]), await this.normalise(c.method, p[3])];
  }
}

const show = (r: Reply) => (r[0] === "exc" ? `${r[1]}: ${r[2]}` : r[0] === "ok" ? `ok ${JSON.stringify(r[3].length > 300 ? `${r[3].slice(0, 300)}…` : r[3])}` : r[0]);
/** For two long OK payloads: the first line that differs. */
function firstDifference(a: Reply, b: Reply): string {
  if (a[0] !== "ok" || b[0] !== "ok") return "";
  const x = a[3].split("\n");
  const y = b[3].split("\n");
  const i = x.findIndex((l, k) => l !== y[k]);
  const k = i < 0 ? x.length : i;
  return `\n    first difference, line ${k + 1}: qubesd ${JSON.stringify(x[k] ?? "")} / sim ${JSON.stringify(y[k] ?? "")}`;
}
const describeCall = (c: GenCall) =>
  JSON.stringify(c.raw ?? `${c.method}+${c.arg} ${c.src} ${c.dtype} ${c.dest}\0${c.payload.length > 120 ? `${c.payload.slice(0, 120)}…(${c.payload.length} bytes)` : c.payload}`);

it("takes every help text of the shared property table from qubesd's answers, and the simulator answers the same", async () => {
  const socket = path.join(tmpDir(), "qubesd.sock");
  const server = await new Simulator().listen(socket);
  try {
    for (const req of ["admin.vm.Create.TemplateVM+ dom0 name dom0\0name=t label=black", "admin.vm.Create.AppVM+t dom0 name dom0\0name=a label=red"])
      expect(parse(await call(socket, latin1(req)))[0]).toBe("ok");
    for (const [klass, list] of Object.entries(QUBE_PROPERTIES))
      for (const p of list) expect(p.help, `${klass}.${p.name}`).toBe(propertyHelp(klass as keyof typeof QUBE_PROPERTIES, p.name));
    for (const p of GLOBAL_PROPERTIES) {
      expect(p.help, p.name).toBe(propertyHelp("@global", p.name));
      expect(parse(await call(socket, latin1(`admin.property.Help+${p.name} dom0 name dom0\0`)))).toEqual(["ok", "", "", p.help]);
    }
    for (const p of QUBE_PROPERTIES.AppVM) expect(parse(await call(socket, latin1(`admin.vm.property.Help+${p.name} dom0 name a\0`)))).toEqual(["ok", "", "", p.help]);
    for (const p of QUBE_PROPERTIES.TemplateVM) expect(parse(await call(socket, latin1(`admin.vm.property.Help+${p.name} dom0 name t\0`)))).toEqual(["ok", "", "", p.help]);
    // the two texts the golden transcripts show verbatim
    expect(propertyHelp("AppVM", "netvm")).toBe("VM that provides network connection to this domain. When None, machine is disconnected. When absent, domain uses default NetVM.");
    expect(propertyHelp("@global", "default_netvm")).toBe("Default NetVM for AppVMs. Initial state is None, which means that AppVMs are not connected to the Internet.");
    expect(propertyHelp("AppVM", "nosuch")).toBeUndefined();
  } finally {
    await server.close();
  }
});

it("has recorded sequences of 1,000 calls, and the probes", () => {
  const seeds = files.filter((f) => f.startsWith("seed-"));
  expect(seeds.length).toBeGreaterThanOrEqual(3);
  for (const f of seeds) expect(load(f).calls).toHaveLength(1000);
  // the probes: one recorded call per request line of each probes*.txt (each a sequence on a fresh system)
  const lists = fs.readdirSync(dir).filter((f) => /^probes.*\.txt$/.test(f));
  expect(lists).toContain("probes.txt");
  expect(lists).toContain("probes-lifecycle.txt");
  expect(lists).toContain("probes-apply.txt");
  expect(lists).toContain("probes-failures.txt");
  expect(lists).toContain("probes-snapshots.txt");
  // the event recordings: one recorded call per request line after the subscription
  const events = fs.readdirSync(dir).filter((f) => /^events.*\.txt$/.test(f));
  expect(events).toContain("events-lifecycle.txt");
  for (const list of events) {
    const [sub, ...rest] = fs.readFileSync(path.join(dir, list), "latin1").split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.replace(/\\0/g, "\0").replace(/\\n/g, "\n"));
    const fx = load(list.replace(/\.txt$/, ".json.gz"));
    expect(fx.subscription?.raw, list).toBe(sub);
    expect(fx.calls.map((c) => c.request.raw), list).toEqual(rest);
    expect(fx.calls.every((c) => Array.isArray(c.frames)), list).toBe(true);
  }
  for (const list of lists) {
    const probes = fs.readFileSync(path.join(dir, list), "latin1").split("\n").filter((l) => l && !l.startsWith("#"));
    expect(load(list.replace(/\.txt$/, ".json.gz")).calls.map((c) => c.request.raw), list).toEqual(probes.map((l) => l.replace(/\\0/g, "\0").replace(/\\n/g, "\n")));
  }
});

for (const file of files) {
  describe(`replay of ${file} against a fresh simulator`, () => {
    const fx = load(file);
    let server: SimulatorServer;
    let side: Side;
    const mismatches = new Map<number, string>();
    beforeAll(async () => {
      const socket = path.join(tmpDir(), "qubesd.sock");
      server = await new Simulator().listen(socket);
      side = new Side(socket);
    });
    afterAll(async () => {
      await server?.close();
    });

    it("builds the recorded system (every set-up call succeeds)", async () => {
      for (const req of fx.setup) expect(parse(await call(side.socket, latin1(req)))[0], req).toBe("ok");
    });

    it("answers every call as the real qubesd did", async () => {
      // an event recording: the stream stays open while the calls go, and each call's frames are compared too
      const stream = fx.subscription ? await openStream(side.socket, latin1(fx.subscription.raw)) : undefined;
      let seen = 0;
      const framesSince = async (): Promise<string[]> => {
        // the simulator sends a call's frames before its reply; wait for the socket to deliver them
        for (let quiet = 0, n = -1; quiet < 3; quiet = stream!.frames.length === n ? quiet + 1 : 0, n = stream!.frames.length)
          await new Promise((r) => setTimeout(r, 5));
        const fresh = stream!.frames.slice(seen);
        seen = stream!.frames.length;
        return Promise.all(fresh.map((f) => side.normalise(fx.subscription!.method, [f.subject, f.event, ...f.kwargs.flat()].join("\0"))));
      };
      try {
        if (stream) expect(await framesSince()).toEqual(fx.first_frames);
        for (const [i, { request, reply, frames }] of fx.calls.entries()) {
          const got = await side.send(request);
          if (JSON.stringify(got) !== JSON.stringify(reply))
            mismatches.set(i, `#${i} ${describeCall(request)}\n    qubesd ${show(reply)}\n    sim    ${show(got)}${firstDifference(reply, got)}`);
          if (stream) {
            const heard = await framesSince();
            if (JSON.stringify(heard) !== JSON.stringify(frames))
              mismatches.set(i, `#${i} ${describeCall(request)}: events\n    qubesd ${JSON.stringify(frames)}\n    sim    ${JSON.stringify(heard)}`);
          }
        }
      } finally {
        stream?.close();
      }
      const unexpected = [...mismatches].filter(([i]) => !(String(i) in fx.known)).map(([, s]) => s);
      expect(unexpected.slice(0, Number(process.env.SIM_FIDELITY_SHOW ?? 10)).join("\n"), `${unexpected.length} calls answered differently`).toBe("");
    });

    it("still differs on each call listed as a known difference (remove the note once fixed)", () => {
      const fixed = Object.keys(fx.known).filter((i) => !mismatches.has(Number(i)));
      expect(fixed).toEqual([]);
    });
  });
}
