/**
 * `qkit flow --stack FILE`: the flows of the machine as it will be once a
 * stack is applied. The future system model and policy are what-if's
 * (`futureSystem`, `futurePolicy`); the future wiring is today's with the
 * stack's declarations on top (`netvm`, `provides_network`, `firewall`,
 * `devices`; a qube the stack removes is gone).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import {
  checkStack,
  createMemoryFileSystem,
  loadPolicy,
  POLICY_DIR,
  prepareSystemInfo,
  type CompiledPolicy,
  type FlowDevice,
  type FlowMachine,
  type FlowQubeInfo,
  type FlowWarning,
  type RawSystemInfo,
  type StackModel,
  type SystemInfo,
} from "@qubes-kit/language";
import { futurePolicy, futureSystem, type PolicyTexts, type WhatIfSystem } from "../apply/future.js";
import type { CliIO } from "./command.js";
import { UsageError } from "./command.js";
import { InputError } from "./flow-inputs.js";
import { noteRead, noteReadDir } from "./inputs-read.js";

const diskReader = {
  readFile(p: string): string | undefined {
    try {
      const text = fs.readFileSync(p, "utf8");
      noteRead(p);
      return text;
    } catch {
      return undefined;
    }
  },
};

/** Reads a policy directory as what-if's {@link PolicyTexts} (`NAME.policy`, `include/NAME`). */
export function policyTextsOf(dir: string): PolicyTexts {
  const out: PolicyTexts = {};
  noteReadDir(dir);
  const list = (d: string) => {
    try {
      return fs.readdirSync(d);
    } catch (e) {
      throw new UsageError(`cannot read the policy directory \`${d}\`: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  };
  for (const n of list(dir)) {
    const p = path.join(dir, n);
    if (n.endsWith(".policy") && fs.statSync(p).isFile()) out[n] = fs.readFileSync(p, "utf8");
  }
  const inc = path.join(dir, "include");
  if (fs.existsSync(inc) && fs.statSync(inc).isDirectory()) for (const n of list(inc)) if (fs.statSync(path.join(inc, n)).isFile()) out[`include/${n}`] = fs.readFileSync(path.join(inc, n), "utf8");
  return out;
}

/** The wiring of a qube after apply: today's, with the declaration's managed keys. */
function declaredWiring(today: FlowQubeInfo | undefined, decl: StackModel["qubes"][number], globalNetvm: string | null | undefined, warnings: FlowWarning[]): FlowQubeInfo {
  const info: FlowQubeInfo = { ...(today ?? {}) };
  const netvm = decl.properties["netvm"];
  if (netvm !== undefined) {
    if (netvm === null || typeof netvm === "string") info.netvm = netvm === "" ? null : netvm;
    else if (typeof netvm === "object") {
      if (globalNetvm !== undefined) info.netvm = globalNetvm;
      else {
        delete info.netvm;
        warnings.push({ code: "flow-bad-value", message: `\`${decl.name}\` will use the default netvm, which the system model does not give (add "global": {"default_netvm": …}); its network is left out` });
      }
    }
  }
  const pn = decl.properties["provides_network"];
  if (typeof pn === "boolean") info.providesNetwork = pn;
  if (decl.firewall) info.firewall = [...decl.firewall];
  if (decl.devices) {
    const devices: FlowDevice[] = [];
    for (const [devclass, list] of Object.entries(decl.devices)) {
      for (const d of list) {
        if (d.port === undefined) {
          warnings.push({ code: "flow-bad-value", message: `a ${devclass} device of \`${decl.name}\` is chosen by a selector, which only apply resolves; it is left out` });
          continue;
        }
        devices.push({ devclass, backend: d.backend, port: d.port, ...(d.deviceId !== undefined ? { deviceId: d.deviceId } : {}), mode: d.mode });
      }
    }
    // Devices of classes the stack does not manage stay as they are.
    info.devices = [...(today?.devices ?? []).filter((x) => !(x.devclass in decl.devices!)), ...devices];
  }
  return info;
}

/** The machine after applying the stack in `file`. */
export function futureInputs(
  file: string,
  io: CliIO,
  today: { raw: WhatIfSystem; policy: PolicyTexts; machine: FlowMachine },
): { system: SystemInfo; policy: CompiledPolicy; machine: FlowMachine; warnings: FlowWarning[]; stack: string } {
  const abs = path.resolve(io.cwd, file);
  if (diskReader.readFile(abs) === undefined) throw new UsageError(`cannot read the stack \`${file}\`; check the path`);
  const r = checkStack(diskReader, abs, {});
  const errors = r.diagnostics.filter((d) => d.severity === "error");
  if (!r.model || errors.length) {
    const first = errors[0];
    throw new InputError(`the stack \`${file}\` has errors (${first ? first.message : "no model"}); run \`qkit template check ${file}\``, "invalid-stack");
  }
  const model = r.model;
  const futureRaw = futureSystem(today.raw, model);
  const texts = futurePolicy(today.policy, model);
  const files: Record<string, string> = {};
  for (const [k, v] of Object.entries(texts)) files[`${POLICY_DIR}/${k}`] = v;
  const loaded = loadPolicy(createMemoryFileSystem(files, [POLICY_DIR]));
  if (!loaded.ok) throw new InputError(`the policy after applying \`${file}\` does not load: ${loaded.error.message}`, "policy-does-not-load");
  const warnings: FlowWarning[] = [];
  const g = model.global["default_netvm"];
  const globalNetvm = typeof g === "string" || g === null ? g : (today.raw.global?.["default_netvm"] as string | null | undefined);
  const machine: FlowMachine = { qubes: { ...today.machine.qubes } };
  for (const decl of model.qubes) {
    if (decl.absent) delete machine.qubes[decl.name];
    else machine.qubes[decl.name] = declaredWiring(today.machine.qubes[decl.name], decl, globalNetvm, warnings);
  }
  return { system: prepareSystemInfo(futureRaw as unknown as RawSystemInfo), policy: loaded.policy, machine, warnings, stack: model.stack };
}
