/**
 * The inputs of `qkit flow`, `qkit policy flip` and `qkit policy replay`: a
 * policy (a directory, or the live one through the policy admin API), a
 * system model (a GetSystemInfo JSON file, or the live system), and for
 * flow the machine's wiring (netvm, firewall, devices: extension keys of the
 * system file, or read through the Admin API).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import {
  jsonErrorAt,
  loadPolicy,
  machineFromSystemJson,
  prepareSystemInfo,
  POLICY_DIR,
  type CompiledPolicy,
  type FlowDevice,
  type FlowMachine,
  type FlowQubeInfo,
  type FlowWarning,
  type LoadOptions,
  type PolicyFileSystem,
  type RawSystemInfo,
  type SystemInfo,
} from "@qubes-kit/language";
import { createNodePolicyFileSystem } from "../policy-fs.js";
import type { CliIO } from "./command.js";
import { UsageError } from "./command.js";
import { osMessage } from "./text.js";
import type { ParsedArgs } from "./args.js";
import type { Qubes } from "../qubes.js";
import { POLICY_DOES_NOT_LOAD, policyLoadMessage } from "./policy-load.js";
import { malformedQube, systemModelText } from "./policy.js";
import { noteRead, noteReadDir } from "./inputs-read.js";

/** The options every one of these commands takes to reach qubesd (or a simulator). */
export const CONNECTION_OPTIONS = { socket: "value", qrexec: true, timeout: "value" } as const;

/** A failure of input (exit 2), with a stable code. */
export class InputError extends Error {
  override name = "InputError";
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

function connectionFlags(a: ParsedArgs): Map<string, string | true> {
  const flags = new Map<string, string | true>();
  for (const k of ["socket", "timeout"]) if (a.values.has(k)) flags.set(`--${k}`, a.values.get(k)!);
  if (a.flags.has("qrexec")) flags.set("--qrexec", true);
  return flags;
}

let connection: { qubes: Qubes; policy: import("../policy-admin.js").PolicyAdmin } | undefined;
/** How the connection was made (filled by `connect`), so a failure names the socket and the way out. */
let connectionInfo: import("./connect.js").ConnectionInfo | undefined;
async function connected(a: ParsedArgs, io: CliIO) {
  if (!connection) {
    const { connect } = await import("./connect.js");
    const info = {} as import("./connect.js").ConnectionInfo;
    connection = connect(connectionFlags(a), { env: io.env, cwd: io.cwd }, info);
    connectionInfo = info;
  }
  return connection;
}

/** Forgets the connection (each command run connects afresh). */
export function resetConnection(): void {
  connection = undefined;
  connectionInfo = undefined;
}

/** The policy as what-if's texts (`NAME.policy`, `include/NAME`): a directory, or the live policy. */
export async function readPolicyTexts(spec: string | undefined, a: ParsedArgs, io: CliIO): Promise<Record<string, string>> {
  if (spec === undefined) throw new UsageError("`--policy-dir DIR` (or `--policy-dir live`) is required");
  if (spec === "live") return (await (await connected(a, io)).policy.snapshot()).texts;
  if (!existsSync(path.resolve(io.cwd, spec)) && spec.indexOf(":") > 0) throw new UsageError(`--stack needs the policy as a directory or \`live\`, not the git revision \`${spec}\`; check the revision out into a directory first`);
  const abs = path.resolve(io.cwd, spec);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new UsageError(`policy directory \`${spec}\` is not a directory (give a policy.d directory or \`live\`)`);
  const { policyTextsOf } = await import("./flow-stack.js");
  return policyTextsOf(abs);
}

/** A loaded policy and where it came from (for re-loading edited copies). */
export interface PolicyInput {
  label: string;
  policy: CompiledPolicy;
  fs: PolicyFileSystem;
  loadOptions: LoadOptions;
}

/** Loads `--policy-dir DIR|live`. A policy that does not load is an {@link InputError}. */
export async function readPolicyInput(spec: string | undefined, a: ParsedArgs, io: CliIO, option = "--policy-dir"): Promise<PolicyInput> {
  if (spec === undefined) throw new UsageError(`\`${option} DIR\` (or \`${option} live\`) is required`);
  let fs: PolicyFileSystem;
  if (spec === "live") fs = await (await connected(a, io)).policy.fileSystem();
  else if (!existsSync(path.resolve(io.cwd, spec)) && spec.indexOf(":") > 0) {
    // REV:PATH, a directory of a git revision, read as `qkit policy diff` reads it.
    const { policyInput } = await import("./policy-audit.js");
    fs = (await policyInput(spec, a, io)).fs;
  } else {
    const abs = path.resolve(io.cwd, spec);
    if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new UsageError(`policy directory \`${spec}\` is not a directory (give a policy.d directory, \`live\` or REV:PATH of a git revision)`);
    noteReadDir(abs);
    fs = createNodePolicyFileSystem({ mounts: { [POLICY_DIR]: abs }, passthrough: abs === POLICY_DIR, onRead: (p) => noteRead(p) });
  }
  const loadOptions: LoadOptions = {};
  const r = loadPolicy(fs, loadOptions);
  if (!r.ok) throw new InputError(policyLoadMessage(spec, r.error), POLICY_DOES_NOT_LOAD);
  return { label: spec, policy: r.policy, fs, loadOptions };
}

/** The system model and, from the same source, the machine's wiring. */
export interface SystemInput {
  system: SystemInfo;
  /** The answer as read (for what-if: with its extension keys). */
  raw: RawSystemInfo;
  machine: FlowMachine;
  warnings: FlowWarning[];
}

/** Reads `--system FILE|live`; `wiring` also reads netvm, firewall and devices of a live system. */
export async function readSystemInput(spec: string | undefined, a: ParsedArgs, io: CliIO, wiring = false): Promise<SystemInput> {
  if (spec === undefined) throw new UsageError("`--system FILE|live` is required: the answer is about the qubes of a system");
  if (spec === "live") {
    const { qubes } = await connected(a, io);
    let raw: RawSystemInfo;
    if (wiring) {
      // What-if's reader: GetSystemInfo plus the global properties a stack may depend on.
      const { readWhatIfSystem } = await import("../apply/future-live.js");
      raw = (await readWhatIfSystem(qubes)) as unknown as RawSystemInfo;
    } else {
      const { systemInfo } = await import("../system-info.js");
      raw = await systemInfo(qubes);
    }
    const system = prepareSystemInfo(raw);
    return { system, raw, machine: wiring ? await readMachine(qubes, Object.keys(raw.domains).filter((n) => !n.startsWith("uuid:"))) : { qubes: {} }, warnings: [] };
  }
  let raw: unknown;
  let read: ReturnType<typeof systemModelText>;
  try {
    read = systemModelText(path.resolve(io.cwd, spec), `\`${spec}\``);
  } catch (e) {
    const why = e && typeof e === "object" && "code" in e && e.code === "ENOENT" ? "no such file" : osMessage(e);
    throw new UsageError(`cannot read the system model \`${spec}\`: ${why}`);
  }
  if ("problem" in read) throw new UsageError(read.problem, read.code);
  const text = read.text;
  try {
    raw = JSON.parse(text);
  } catch {
    // Where, never what: the file may be anything (a secret named by mistake).
    throw new UsageError(`cannot read the system model \`${spec}\`: not valid JSON (${jsonErrorAt(text, spec)})`);
  }
  if (!raw || typeof raw !== "object" || !(raw as { domains?: unknown }).domains || typeof (raw as { domains?: unknown }).domains !== "object" || Array.isArray((raw as { domains?: unknown }).domains)) {
    throw new UsageError(`the system model \`${spec}\` is not an internal.GetSystemInfo answer (no \`domains\` object)`);
  }
  const domains = Object.entries((raw as { domains: Record<string, unknown> }).domains);
  // As the other auditor commands: a model with no qubes would answer "no flow" to everything.
  if (domains.length === 0) throw new UsageError(`the system model \`${spec}\` has no qubes (\`domains\` is empty), so every answer would be empty; give the model of a real system (\`qkit system snapshot\` writes one; dom0 is always there)`, "empty-system");
  const bad = malformedQube(domains, `the system model \`${spec}\``);
  if (bad !== undefined) throw new UsageError(bad, "bad-system-model");
  const { machine, warnings } = machineFromSystemJson(raw);
  return { system: prepareSystemInfo(raw as { domains: Record<string, never> }), raw: raw as RawSystemInfo, machine, warnings };
}

const DEVICE_CLASSES = ["pci", "usb", "block", "mic"];

/** Reads netvm, provides_network, firewall and device assignments/attachments of every qube through the Admin API. */
export async function readMachine(qubes: Qubes, names: string[]): Promise<FlowMachine> {
  const { calls } = await import("../calls.js");
  const { formatFirewallRule } = await import("../firewall.js");
  const { mapLimit } = await import("../events.js");
  const machine: FlowMachine = { qubes: {} };
  await mapLimit(names, 16, async (name) => {
    const info: FlowQubeInfo = {};
    if (name === "dom0") {
      info.netvm = null;
    } else {
      const props = await qubes.run(calls.propertyGetAll(name)).catch(() => undefined);
      const netvm = props?.get("netvm");
      if (netvm) info.netvm = netvm.raw === "" ? null : netvm.raw;
      const pn = props?.get("provides_network");
      if (pn) info.providesNetwork = pn.raw === "True";
      const fw = await qubes.run(calls.firewallGet(name)).catch(() => undefined);
      if (fw) info.firewall = fw.map((r) => formatFirewallRule(r));
    }
    const devices: FlowDevice[] = [];
    for (const devclass of DEVICE_CLASSES) {
      for (const [kind, call] of [
        ["assigned", calls.deviceAssigned(name, devclass)],
        ["attached", calls.deviceAttached(name, devclass)],
      ] as const) {
        const list = await qubes.run(call).catch(() => []);
        for (const d of list) {
          if (devices.some((x) => x.devclass === devclass && x.backend === d.backendDomain && x.port === d.portId)) continue;
          devices.push({ devclass, backend: d.backendDomain, port: d.portId, deviceId: d.deviceId, mode: kind === "attached" ? "attached" : String(d.mode) });
        }
      }
    }
    if (devices.length) info.devices = devices;
    machine.qubes[name] = info;
  });
  return machine;
}

/** Runs a command whose exit code 1 is an answer: input failures are one line with a code and exit 2. */
export async function answering(pathText: string, io: CliIO, fn: () => Promise<number>): Promise<number> {
  resetConnection();
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UsageError) throw err;
    if (err instanceof InputError) {
      io.stderr.write(`qkit ${pathText}: ${err.message} [${err.code}]\n`);
      return 2;
    }
    const { describeFailure } = await import("./failure.js");
    const f = describeFailure(err, connectionInfo?.via === undefined ? undefined : connectionInfo);
    if (f) {
      io.stderr.write(`qkit ${pathText}: ${f.message} [${f.code}]\n`);
      return 2;
    }
    // Exit 1 is an answer here, so any other failure is an error (2), never a silent "no".
    const msg = err instanceof Error ? err.message : String(err);
    io.stderr.write(`qkit ${pathText}: ${msg.split("\n")[0]} [error]\n`);
    return 2;
  } finally {
    resetConnection();
  }
}
