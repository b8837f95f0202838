/**
 * Golden transcripts of the real qubesd and the real policy admin service
 * (test/fixtures/admin-api): for every file, the equivalent typed SDK call
 * must write exactly the recorded request bytes and turn the recorded reply
 * into the right typed value or typed error.
 *
 * A few recordings are requests the typed API refuses on purpose (they break
 * a qubesd/qrexec rule, see REFUSED) or cannot express (RAW); for those the
 * test checks the refusal and replays the recorded bytes through the
 * unchecked low-level call to test the reply parsing.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  FunctionTransport,
  PolicyAdmin,
  PolicyValidationError,
  Qube,
  Qubes,
  QubesEmptyReplyError,
  QubesException,
  QubesUnknownError,
  QubesValidationError,
  WIRE_ERROR_CLASSES,
  calls,
  formatFirewallRule,
  parseDeviceProperties,
  parseLines,
  parseReply,
  type DeviceAssignment,
  type FirewallRule,
  type PropertyInput,
  type QubesEvent,
  type ServiceRequest,
  type WireRequest,
} from "@qubes-kit/sdk";

const FIXTURES = join(__dirname, "..", "fixtures", "admin-api");

interface QubesdFixture {
  id: string;
  title: string;
  request: { method: string; arg: string; source: string; dest_type: string; dest: string; payload_b64: string; raw_b64: string };
  response: {
    raw_b64: string;
    parsed:
      | { kind: "ok"; text: string }
      | { kind: "exception"; exc_type: string; traceback: string; message: string }
      | { kind: "events"; events: { subject: string; event: string; kwargs: Record<string, string> }[] }
      | { kind: "empty" };
  };
}

interface PolicyFixture {
  id: string;
  request: { service: string; arg: string; stdin_b64: string };
  response: { exit_code: number; stdout_b64: string; stderr_b64: string };
}

function load<T>(dir: string): T[] {
  const d = join(FIXTURES, dir);
  return readdirSync(d)
    .filter((f) => /^[0-9]+-.*\.json$/.test(f))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(d, f), "utf8")) as T);
}

const b64 = (s: string): Buffer => Buffer.from(s, "base64");
const num = (id: string): string => id.slice(0, 3);

/** Requests the typed API refuses before sending, with the rule that refuses them. */
const REFUSED: Record<string, string> = {
  "031": "label colour must be 0x + 6 hex digits",
  "069": "property name must not be empty",
  "081": "feature name with `/`",
  "082": "feature value with a tab",
  "092": "tag with a dot",
  "097": "create without a label",
  "098": "qube name starting with a digit",
  "129": "volume size not decimal",
  "141": "invalid firewall action",
  "154": "unknown assignment mode",
  "155": "device option name with a space",
  "200": "uuid destination that is not a uuid",
  "204": "argument with a space",
};

/** Requests the typed API cannot express (they probe qubesd's own checks). */
const RAW: Record<string, string> = {
  "099": "pool= with Create (the typed API uses CreateInPool for pools)",
  "174": "shutdown argument other than force/wait",
  "196": "payload for a method without one",
  "197": "argument for a method without one",
  "198": "global method with a qube destination",
  "202": "a keyword other than adminvm",
  "203": "a header without its NUL",
  "902": "argument for a method without one (qubesd --debug)",
};

/** Framing probes recorded as raw bytes only: the request fields they stand for. */
const FRAMING: Record<string, Partial<QubesdFixture["request"]>> = {
  "203": { method: "admin.vm.List", arg: "", source: "dom0", dest_type: "name", dest: "dom0", payload_b64: "" },
  "204": { method: "admin.vm.feature.Get", arg: "a b", source: "dom0", dest_type: "name", dest: "personal", payload_b64: "" },
};

/** Policy admin requests refused client-side. */
const POLICY_REFUSED: Record<string, string> = {
  "005": "file name with `../`",
  "009": "text `x` is not a valid policy",
  "010": "text with a syntax error",
  "015": "empty service",
};
const POLICY_RAW: Record<string, string> = {
  "011": "payload without a token line",
  "018": "argument for policy.List",
};

function kv(payload: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of payload.split(" ")) {
    const eq = part.indexOf("=");
    if (eq > 0) out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/** `backend+port+devid(':'→'+')` back to its parts. */
function splitDeviceArg(arg: string): { backendDomain: string; portId: string; deviceId: string } {
  const [backendDomain, portId, ...rest] = arg.split("+");
  return { backendDomain: backendDomain!, portId: portId!, deviceId: rest.join(":") };
}

const PROPERTY_TYPES: Record<string, string> = {
  provides_network: "bool",
  template_for_dispvms: "bool",
  memory: "int",
  qid: "int",
};

/** The typed value a script would pass for a recorded property payload. */
function propertyInput(name: string, payload: string): PropertyInput {
  if (payload === "") return null;
  if (PROPERTY_TYPES[name] === "bool" && (payload === "True" || payload === "False")) return payload === "True";
  if (PROPERTY_TYPES[name] === "int" && /^(0|[1-9][0-9]*)$/.test(payload)) return Number(payload);
  return payload;
}

/** The typed SDK call equivalent to a recorded request. */
function typedCall(q: Qubes, r: QubesdFixture["request"], payload: string): Promise<unknown> {
  const m = r.method;
  const dest = r.dest_type === "keyword" ? `@${r.dest}` : r.dest;
  const vm = q.qube(dest);
  const global = dest === "dom0" && !m.startsWith("admin.vm.");
  let mm: RegExpExecArray | null;
  if ((mm = /^admin\.vm\.(Create|CreateInPool)\.(\w+)$/.exec(m))) {
    const p = kv(payload);
    const pools: Record<string, string> = {};
    for (const [k, v] of Object.entries(p)) if (k.startsWith("pool:")) pools[k.slice(5)] = v;
    return q.createQube({
      class: mm[2]!,
      name: p["name"]!,
      label: p["label"]!,
      ...(r.arg ? { template: r.arg } : {}),
      ...(p["pool"] ? { pool: p["pool"] } : {}),
      ...(Object.keys(pools).length ? { pools } : {}),
      ...(mm[1] === "CreateInPool" ? { inPool: true } : {}),
    });
  }
  if ((mm = /^admin\.vm\.device\.(\w+)\.(.+)$/.exec(m)) && mm[1] !== "denied") {
    const devs = vm.devices(mm[1]!);
    switch (mm[2]) {
      case "Available":
        return devs.available(r.arg);
      case "Assigned":
      case "Attached": {
        const filter = r.arg ? { backendDomain: r.arg.split("+")[0]!, portId: r.arg.split("+").slice(1).join("+") } : undefined;
        return mm[2] === "Assigned" ? devs.assigned(filter) : devs.attached(filter);
      }
      case "Assign": {
        const props = new Map(parseDeviceProperties(payload));
        const options: Record<string, string> = {};
        for (const [k, v] of parseDeviceProperties(payload)) if (k.startsWith("_")) options[k.slice(1)] = v;
        const a: DeviceAssignment = {
          backendDomain: props.get("backend_domain")!,
          portId: props.get("port_id")!,
          deviceId: props.get("device_id")!,
          devclass: props.get("devclass")!,
          mode: props.get("mode") as DeviceAssignment["mode"],
          options,
        };
        if (props.has("frontend_domain")) a.frontendDomain = props.get("frontend_domain")!;
        return devs.assign(a);
      }
      case "Unassign":
        return devs.unassign(splitDeviceArg(r.arg));
      case "Detach":
        return devs.detach(splitDeviceArg(r.arg));
      case "Set.assignment":
        return devs.setMode(splitDeviceArg(r.arg), payload as "required");
    }
  }
  switch (m) {
    case "admin.vmclass.List":
      return q.vmClasses();
    case "admin.deviceclass.List":
      return q.deviceClasses();
    case "admin.vm.List":
      return q.run(calls.vmList(dest));
    case "admin.property.List":
      return q.propertyList();
    case "admin.property.Get":
      return q.getProperty(r.arg);
    case "admin.property.GetAll":
      return q.properties();
    case "admin.property.GetDefault":
      return q.propertyDefault(r.arg);
    case "admin.property.Help":
      return q.propertyHelp(r.arg);
    case "admin.property.Set":
      return q.setProperty(r.arg, propertyInput(r.arg, payload));
    case "admin.property.Reset":
      return q.resetProperty(r.arg);
    case "admin.vm.property.List":
      return vm.propertyList();
    case "admin.vm.property.Get":
      return vm.getProperty(r.arg);
    case "admin.vm.property.GetAll":
      return vm.properties();
    case "admin.vm.property.GetDefault":
      return vm.propertyDefault(r.arg);
    case "admin.vm.property.Help":
      return vm.propertyHelp(r.arg);
    case "admin.vm.property.Set":
      return vm.setProperty(r.arg, propertyInput(r.arg, payload));
    case "admin.vm.property.Reset":
      return vm.resetProperty(r.arg);
    case "admin.label.List":
      return q.labels();
    case "admin.label.Get":
      return q.label(r.arg).color();
    case "admin.label.Index":
      return q.label(r.arg).index();
    case "admin.label.Create":
      return q.createLabel(r.arg, payload);
    case "admin.label.Remove":
      return q.removeLabel(r.arg);
    case "admin.vm.feature.List":
      return vm.features.list();
    case "admin.vm.feature.Get":
      return vm.features.getOrThrow(r.arg);
    case "admin.vm.feature.CheckWithTemplate":
    case "admin.vm.feature.CheckWithNetvm":
    case "admin.vm.feature.CheckWithAdminVM":
    case "admin.vm.feature.CheckWithTemplateAndAdminVM":
      return vm.features.check(r.arg, m.slice("admin.vm.feature.".length) as "CheckWithTemplate");
    case "admin.vm.feature.Set":
      return vm.features.set(r.arg, payload === "" ? false : payload);
    case "admin.vm.feature.Remove":
      return vm.features.remove(r.arg);
    case "admin.vm.tag.List":
      return vm.tags.list();
    case "admin.vm.tag.Get":
      return vm.tags.has(r.arg);
    case "admin.vm.tag.Set":
      return vm.tags.add(r.arg);
    case "admin.vm.tag.Remove":
      return vm.tags.remove(r.arg);
    case "admin.vm.Remove":
      return vm.remove();
    case "admin.vm.CreateDisposable":
      return q.run(calls.createDisposable(dest, { uuid: payload === "uuid", preload: r.arg === "preload" }));
    case "admin.vm.Start":
      return vm.start();
    case "admin.vm.Shutdown":
      return vm.shutdown({ force: r.arg.split("+").includes("force"), wait: r.arg.split("+").includes("wait") });
    case "admin.vm.Kill":
      return vm.kill();
    case "admin.vm.Pause":
      return vm.pause();
    case "admin.vm.Unpause":
      return vm.unpause();
    case "admin.vm.CurrentState":
      return vm.currentState();
    case "admin.vm.Console":
      return q.run(calls.console(dest));
    case "admin.vm.notes.Get":
      return vm.getNotes();
    case "admin.pool.List":
      return q.pools();
    case "admin.pool.ListDrivers":
      return q.poolDrivers();
    case "admin.pool.Info":
      return q.pool(r.arg).info();
    case "admin.pool.UsageDetails":
      return q.pool(r.arg).usageDetails();
    case "admin.pool.volume.List":
      return q.pool(r.arg).volumes();
    case "admin.pool.Set.revisions_to_keep":
      return q.pool(r.arg).setRevisionsToKeep(Number(payload));
    case "admin.pool.Add": {
      const lines = parseLines(payload).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as const);
      const name = lines.find(([k]) => k === "name")![1];
      return q.addPool(name, r.arg, Object.fromEntries(lines.filter(([k]) => k !== "name")));
    }
    case "admin.pool.Remove":
      return q.removePool(r.arg);
    case "admin.vm.volume.List":
      return vm.volumeNames();
    case "admin.vm.volume.Info":
      return vm.volume(r.arg).info();
    case "admin.vm.volume.ListSnapshots":
      return vm.volume(r.arg).revisions();
    case "admin.vm.volume.Resize":
      return vm.volume(r.arg).resize(/^[0-9]+$/.test(payload) ? Number(payload) : (payload as unknown as number));
    case "admin.vm.volume.Set.revisions_to_keep":
      return vm.volume(r.arg).setRevisionsToKeep(Number(payload));
    case "admin.vm.volume.Set.rw":
      return vm.volume(r.arg).setRw(payload === "True");
    case "admin.vm.volume.Set.ephemeral":
      return vm.volume(r.arg).setEphemeral(payload === "True");
    case "admin.vm.volume.Revert":
      return vm.volume(r.arg).revert(payload);
    case "admin.vm.volume.CloneFrom":
      return vm.volume(r.arg).cloneFrom();
    case "admin.vm.volume.CloneTo":
      return vm.volume(r.arg).cloneTo(payload);
    case "admin.vm.firewall.Get":
      return vm.firewall.get();
    case "admin.vm.firewall.Set":
      return vm.firewall.set(parseLines(payload));
    case "admin.vm.firewall.Reload":
      return vm.firewall.reload();
    case "admin.vm.device.denied.List":
      return vm.deniedDevices.list();
    case "admin.vm.device.denied.Add":
      return vm.deniedDevices.add(payload.match(/.{7}/g) ?? []);
    case "admin.vm.device.denied.Remove":
      return vm.deniedDevices.remove(payload === "all" ? "all" : (payload.match(/.{7}/g) ?? []));
    case "admin.backup.Info":
      return q.backupInfo(r.arg);
    case "admin.Events":
    case "admin.vm.Stats":
      return collect(q.events({ dest, method: m as "admin.Events", reconnect: false }));
  }
  if (global) return q.call(m, dest, r.arg, payload);
  throw new Error(`no typed call for ${m} in the test table`);
}

async function collect(it: AsyncIterable<QubesEvent>): Promise<QubesEvent[]> {
  const out: QubesEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

/** A transport that checks nothing itself: it records the request bytes and serves the recorded reply. */
function fakeTransport(reply: Buffer, sent: Buffer[]): FunctionTransport {
  return new FunctionTransport((bytes: Uint8Array, _req: WireRequest) => {
    sent.push(Buffer.from(bytes));
    // Serve the reply in small chunks, as a socket would.
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < reply.length; i += 7) chunks.push(new Uint8Array(reply.subarray(i, i + 7)));
    return chunks;
  });
}

/** Checks the typed value of a success against the recorded text. */
function checkOk(method: string, text: string, value: unknown): void {
  const lines = parseLines(text);
  if (/^admin\.vm\.(Create|CreateInPool)\./.test(method)) {
    expect(value).toBeInstanceOf(Qube);
  } else if (/\.(List|ListSnapshots)$/.test(method) && method !== "admin.vm.List" && method !== "admin.vm.device.denied.List") {
    expect(value).toEqual(lines);
  } else if (method === "admin.vm.device.denied.List") {
    expect(value).toEqual(text.split("\n").filter(Boolean));
  } else if (method === "admin.vm.List") {
    const v = value as { name: string; class: string; state: string; uuid: string }[];
    expect(v.map((e) => `${e.name} class=${e.class} state=${e.state} uuid=${e.uuid}`)).toEqual(lines);
  } else if (/property\.Get$/.test(method)) {
    const v = value as { isDefault: boolean; type: string; raw: string };
    expect(`default=${v.isDefault ? "True" : "False"} type=${v.type} ${v.raw}`).toBe(text);
  } else if (/property\.GetAll$/.test(method)) {
    const v = value as Map<string, { isDefault: boolean; type: string; raw: string }>;
    expect([...v].map(([n, p]) => `${n} default=${p.isDefault ? "True" : "False"} type=${p.type} ${p.raw.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`)).toEqual(lines);
  } else if (/property\.GetDefault$/.test(method)) {
    if (text === "") expect(value).toBeUndefined();
    else expect(`type=${(value as { type: string }).type} ${(value as { raw: string }).raw}`).toBe(text);
  } else if (method === "admin.vm.tag.Get") {
    expect(value).toBe(text === "1");
  } else if (method === "admin.label.Index") {
    expect(value).toBe(Number(text));
  } else if (method === "admin.vm.CurrentState") {
    const v = value as { mem: number; memStaticMax: number; cputime: bigint; powerState: string };
    expect(`mem=${v.mem} mem_static_max=${v.memStaticMax} cputime=${v.cputime} power_state=${v.powerState}`).toBe(text);
  } else if (method === "admin.vm.volume.Info") {
    const v = value as { raw: Record<string, string>; size: number; rw: boolean };
    expect(Object.entries(v.raw).map(([k, x]) => `${k}=${x}`)).toEqual(lines);
    expect(v.size).toBe(Number(v.raw["size"]));
    expect(v.rw).toBe(v.raw["rw"] === "True");
  } else if (method === "admin.pool.Info") {
    expect(Object.entries(value as Record<string, string>).map(([k, x]) => `${k}=${x}`)).toEqual(lines);
  } else if (method === "admin.pool.UsageDetails") {
    expect(Object.entries(value as Record<string, number>).map(([k, x]) => `${k}=${x}`)).toEqual(lines);
  } else if (method === "admin.pool.ListDrivers") {
    expect((value as { driver: string; parameters: string[] }[]).map((d) => [d.driver, ...d.parameters].join(" "))).toEqual(lines);
  } else if (method === "admin.vm.firewall.Get") {
    expect((value as FirewallRule[]).map((r) => formatFirewallRule(r))).toEqual(lines);
  } else if (/^admin\.vm\.device\.\w+\.Available$/.test(method)) {
    const v = value as { portId: string; deviceId: string; devclass: string; backendDomain: string }[];
    expect(v.map((d) => `${d.portId}:${d.deviceId}`)).toEqual(lines.map((l) => l.split(" ")[0]));
  } else if (/^admin\.vm\.device\.\w+\.(Assigned|Attached)$/.test(method)) {
    const v = value as { backendDomain: string; portId: string; deviceId: string }[];
    expect(v.map((d) => `${d.backendDomain}+${d.portId}:${d.deviceId}`)).toEqual(lines.map((l) => l.split(" ")[0]));
  } else if (text === "" && typeof value !== "string") {
    expect(value).toBeUndefined();
  } else {
    expect(value).toBe(text);
  }
}

function checkError(parsed: QubesdFixture["response"]["parsed"], err: unknown): void {
  if (parsed.kind === "exception") {
    const cls = WIRE_ERROR_CLASSES[parsed.exc_type] ?? QubesUnknownError;
    expect(err).toBeInstanceOf(cls);
    const e = err as QubesException;
    expect(e.qubesType).toBe(parsed.exc_type);
    expect(e.message).toBe(parsed.message);
    expect(e.traceback).toBe(parsed.traceback);
  } else if (parsed.kind === "empty") {
    expect(err).toBeInstanceOf(QubesEmptyReplyError);
  } else {
    throw err;
  }
}

async function outcome(p: () => Promise<unknown>): Promise<{ ok: true; value: unknown } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await p() };
  } catch (error) {
    return { ok: false, error };
  }
}

const qubesd = load<QubesdFixture>("qubesd");
const policy = load<PolicyFixture>("policy-admin");

describe("qubesd golden transcripts", () => {
  it("has every recording", () => {
    expect(qubesd.length).toBe(208);
    expect(policy.length).toBe(19);
  });

  for (const fx of qubesd) {
    it(`${fx.id}: ${fx.title}`, async () => {
      const id = num(fx.id);
      const r = fx.request.method === null ? { ...fx.request, ...FRAMING[id] } : fx.request;
      const payload = b64(r.payload_b64).toString("latin1");
      const reply = b64(fx.response.raw_b64);
      const parsed = fx.response.parsed;
      const sent: Buffer[] = [];
      const q = new Qubes({ transport: fakeTransport(reply, sent), source: r.source });

      if (RAW[id] === undefined) {
        const res = await outcome(() => typedCall(q, r, payload));
        if (REFUSED[id] !== undefined) {
          expect(res.ok).toBe(false);
          expect((res as { error: unknown }).error).toBeInstanceOf(QubesValidationError);
          expect(sent).toHaveLength(0);
        } else {
          if (!res.ok && res.error instanceof QubesValidationError) throw res.error;
          expect(sent).toHaveLength(1);
          expect(sent[0]!.toString("latin1")).toBe(b64(r.raw_b64).toString("latin1"));
          if (parsed.kind === "ok") {
            if (!res.ok) throw res.error;
            checkOk(r.method, parsed.text, res.value);
          } else if (parsed.kind === "events") {
            if (!res.ok) throw res.error;
            expect(res.value).toEqual(parsed.events.map((e) => ({ subject: e.subject === "" ? null : e.subject, event: e.event, kwargs: e.kwargs })));
          } else {
            expect(res.ok).toBe(false);
            checkError(parsed, (res as { error: unknown }).error);
          }
          return;
        }
      } else {
        expect(REFUSED[id]).toBeUndefined();
      }

      // Refused or inexpressible: replay the recorded bytes through the unchecked call.
      const raw = b64(r.raw_b64);
      if (raw.indexOf(0) < 0) {
        // Cannot be framed by any client (no NUL): check the reply parsing alone.
        expect(() => parseReply(new Uint8Array(reply))).toThrow(QubesEmptyReplyError);
        return;
      }
      const sent2: Buffer[] = [];
      const q2 = new Qubes({ transport: fakeTransport(reply, sent2), source: r.source });
      const res = await outcome(() =>
        q2.client.callText({ method: r.method, dest: r.dest_type === "keyword" ? `@${r.dest}` : r.dest, arg: r.arg, payload: b64(r.payload_b64) }, { unchecked: true }),
      );
      expect(sent2[0]!.equals(raw)).toBe(true);
      if (parsed.kind === "ok") {
        if (!res.ok) throw res.error;
        expect(res.value).toBe(parsed.text);
      } else {
        expect(res.ok).toBe(false);
        checkError(parsed, (res as { error: unknown }).error);
      }
    });
  }
});

function policyTransport(fx: PolicyFixture, seen: ServiceRequest[]): FunctionTransport {
  return new FunctionTransport(() => new Uint8Array(0), {
    services: (req) => {
      seen.push(req);
      return { exitCode: fx.response.exit_code, stdout: new Uint8Array(b64(fx.response.stdout_b64)), stderr: new Uint8Array(b64(fx.response.stderr_b64)) };
    },
  });
}

function typedPolicyCall(p: PolicyAdmin, fx: PolicyFixture): Promise<unknown> {
  const { service, arg } = fx.request;
  const stdin = b64(fx.request.stdin_b64).toString("utf8");
  const include = service.startsWith("policy.include.");
  const op = service.split(".").pop();
  switch (op) {
    case "List":
      return p.list({ include });
    case "Get":
      return p.get(arg, { include });
    case "Replace": {
      const nl = stdin.indexOf("\n");
      return p.replace(arg, stdin.slice(nl + 1), stdin.slice(0, nl) as "any", { include });
    }
    case "Remove":
      return p.remove(arg, stdin as "any", { include });
    case "GetFiles":
      return p.getFiles(arg);
    default:
      return p.call(service, arg, stdin);
  }
}

describe("policy admin golden transcripts", () => {
  for (const fx of policy) {
    it(fx.id, async () => {
      const id = num(fx.id);
      const seen: ServiceRequest[] = [];
      const p = new PolicyAdmin(policyTransport(fx, seen));
      let res: Awaited<ReturnType<typeof outcome>>;
      if (POLICY_RAW[id] !== undefined) {
        res = await outcome(() => p.call(fx.request.service, fx.request.arg, new Uint8Array(b64(fx.request.stdin_b64)), { unchecked: true }));
      } else {
        res = await outcome(() => typedPolicyCall(p, fx));
        if (POLICY_REFUSED[id] !== undefined) {
          expect(res.ok).toBe(false);
          const err = (res as { error: unknown }).error;
          expect(err instanceof QubesValidationError || err instanceof PolicyValidationError).toBe(true);
          expect(seen).toHaveLength(0);
          res = await outcome(() => p.call(fx.request.service, fx.request.arg, new Uint8Array(b64(fx.request.stdin_b64)), { unchecked: true }));
        }
      }
      expect(seen).toHaveLength(1);
      expect(seen[0]!.service).toBe(fx.request.service);
      expect(seen[0]!.arg).toBe(fx.request.arg);
      expect(seen[0]!.dest).toBe("dom0");
      expect(Buffer.from(seen[0]!.stdin).equals(b64(fx.request.stdin_b64))).toBe(true);

      const stdout = b64(fx.response.stdout_b64).toString("utf8");
      const stderr = b64(fx.response.stderr_b64).toString("utf8");
      if (fx.response.exit_code !== 0) {
        expect(res.ok).toBe(false);
        const err = (res as { error: unknown }).error as QubesException;
        expect(err).toBeInstanceOf(QubesException);
        expect(err.qubesType).toBe(stderr.slice(0, stderr.indexOf(" ")));
        expect(err.constructor.name).toBe(err.qubesType);
        expect(err.message).toBe(stderr.slice(stderr.indexOf(" ") + 1));
        return;
      }
      if (!res.ok) throw res.error;
      const op = fx.request.service.split(".").pop();
      if (op === "Get" && POLICY_RAW[id] === undefined) {
        const f = res.value as { token: string; text: string; document: { text: string } };
        expect(`${f.token}\n${f.text}`).toBe(stdout);
        expect(f.document.text).toBe(f.text);
      } else if ((op === "List" || op === "GetFiles") && POLICY_RAW[id] === undefined) {
        expect(res.value).toEqual(parseLines(stdout));
      } else if (POLICY_RAW[id] === undefined) {
        expect(res.value).toBeUndefined();
      }
    });
  }
});
