/**
 * Plan and what-if of a stack file against the configured machine, through
 * the SDK (Node only: the Node host offers it; the browser host does not).
 * Nothing here changes the machine: plan reads it, what-if reads it and
 * evaluates the future policy in memory.
 *
 * The machine is the one the settings name (`qubesPolicy.template.connection`):
 * qubesd's admin socket, qrexec from a management qube, or an offline
 * simulator seeded from the system snapshot file and the workspace policy.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { checkStack, prepareSystemInfo, stackSystemOf, type LiveDevice, type StackModel, type StackSystem, type TemplateDiagnostic } from "@qubes-kit/language";
import type * as Sdk from "@qubes-kit/sdk";
import type * as SdkSim from "@qubes-kit/sdk/sim";
import type { QubesPolicySettings, TemplatePlanResult, TemplateProblem, TemplateWhatifResult } from "../protocol.js";

/** qubesd's Admin API socket in dom0. */
export const DEFAULT_ADMIN_SOCKET = "/var/run/qubesd.sock";

/** What a plan or what-if needs from the server. */
export interface TemplateRun {
  settings: QubesPolicySettings;
  /** The first workspace folder (relative paths of the settings). */
  folder: string | undefined;
  /** The stack file (absolute). */
  file: string;
  /** Reads a file: the open document's text, else the disk. */
  readFile(path: string): string | undefined;
  /** The workspace policy directory on disk, if there is one (the simulator starts from it). */
  policyDir: string | undefined;
}

/** An open machine: the SDK's clients and how to say what was read. */
export interface Machine {
  sdk: typeof Sdk;
  qubes: Sdk.Qubes;
  policy: Sdk.PolicyTarget;
  /** The policy as it is now (`NAME.policy`, `include/NAME` → text). */
  policyTexts(): Promise<Record<string, string>>;
  description: string;
  policyDir?: string;
}

const resolveIn = (folder: string | undefined, p: string) => (path.isAbsolute(p) ? p : path.resolve(folder ?? process.cwd(), p));

/** The policy files of a directory (`NAME.policy` and `include/NAME`), for seeding the simulator. */
function policyFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const read = (rel: string) => {
    try {
      out[rel] = fs.readFileSync(path.join(dir, rel), "utf8");
    } catch {
      // Unreadable files are left out; the simulator's policy is a copy in memory.
    }
  };
  try {
    for (const name of fs.readdirSync(dir)) if (name.endsWith(".policy")) read(name);
  } catch {
    return out;
  }
  try {
    for (const name of fs.readdirSync(path.join(dir, "include"))) read(`include/${name}`);
  } catch {
    // No include directory.
  }
  return out;
}

/** Opens the machine the settings name; throws an `Error` with a one-line message when none is configured or it cannot be reached. */
export async function openMachine(run: TemplateRun): Promise<Machine> {
  const sdk = await import("@qubes-kit/sdk");
  const t = run.settings.template ?? {};
  let kind = t.connection ?? "auto";
  if (kind === "auto") {
    const source = run.settings.system?.source ?? "none";
    kind = source === "file" ? "simulator" : source === "socket" ? "socket" : source === "qrexec" ? "qrexec" : "none";
  }
  const policyDir = t.policyDir ? resolveIn(run.folder, t.policyDir) : undefined;
  const target = (admin: Sdk.PolicyAdmin): Sdk.PolicyTarget => (policyDir ? sdk.dirPolicyTarget(policyDir) : sdk.adminPolicyTarget(admin));
  const texts = (admin: Sdk.PolicyAdmin) => async () => (policyDir ? policyFiles(policyDir) : (await admin.snapshot()).texts);
  switch (kind) {
    case "none":
      throw new Error("no machine to plan against: set qubesPolicy.template.connection (or qubesPolicy.system.source) to socket, qrexec or simulator");
    case "simulator": {
      const file = run.settings.system?.file;
      if (!file) throw new Error("the simulator needs a system snapshot: set qubesPolicy.system.file to a GetSystemInfo JSON file");
      const abs = resolveIn(run.folder, file);
      let raw: unknown;
      try {
        raw = JSON.parse(fs.readFileSync(abs, "utf8"));
      } catch (e) {
        throw new Error(`cannot read the system snapshot ${abs}: ${e instanceof Error ? e.message : String(e)}`);
      }
      const seed = policyDir ?? run.policyDir;
      const sim = await import("@qubes-kit/sdk/sim");
      const simulator = new sim.Simulator({ system: raw as SdkSim.SimulatorOptions["system"] & object, policy: seed ? policyFiles(seed) : {} });
      const transport = sim.simulatorTransport(simulator);
      const admin = new sdk.PolicyAdmin(transport);
      return {
        sdk,
        qubes: new sdk.Qubes({ transport }),
        policy: sdk.adminPolicyTarget(admin),
        policyTexts: async () => (await admin.snapshot()).texts,
        description: `an offline simulator seeded from ${path.basename(abs)}${seed ? ` and ${seed}` : ""}`,
      };
    }
    case "socket": {
      const socket = t.socket ?? DEFAULT_ADMIN_SOCKET;
      // As `qkit`: in dom0, qubesd's socket answers the Admin API and `qubes-policy-admin` runs the policy services.
      const transport = t.socket
        ? new sdk.UnixSocketTransport({ path: socket, servicesOverSocket: true })
        : sdk.withServiceTransport(new sdk.UnixSocketTransport({ path: socket }), new sdk.PolicyAdminExecTransport());
      const qubes = new sdk.Qubes({ transport });
      const admin = new sdk.PolicyAdmin(transport);
      const policy = target(admin);
      return { sdk, qubes, policy, policyTexts: texts(admin), description: `qubesd at ${socket} and ${policy.description}`, ...(policyDir ? { policyDir } : {}) };
    }
    case "qrexec": {
      const transport = new sdk.QrexecClientVmTransport();
      const qubes = new sdk.Qubes({ transport });
      const admin = new sdk.PolicyAdmin(transport);
      const policy = target(admin);
      return { sdk, qubes, policy, policyTexts: texts(admin), description: `the Admin API over qrexec and ${policy.description}`, ...(policyDir ? { policyDir } : {}) };
    }
    default:
      throw new Error(`unknown qubesPolicy.template.connection: ${String(kind)}`);
  }
}

/** The checker's view of what the machine has. */
export function stackSystemOfLive(live: Sdk.LiveSystem): StackSystem {
  const qubes: StackSystem["qubes"] = {};
  for (const q of Object.values(live.qubes)) {
    const v = (n: string) => q.properties[n]?.value;
    const netvm = v("netvm");
    qubes[q.name] = {
      class: q.class,
      provides_network: v("provides_network") === true,
      template_for_dispvms: v("template_for_dispvms") === true,
      ...(typeof v("template") === "string" ? { template: v("template") as string } : {}),
      ...(typeof v("label") === "string" ? { label: v("label") as string } : {}),
      ...(q.properties["netvm"] ? { netvm: typeof netvm === "string" && netvm !== "" ? netvm : null } : {}),
      tags: q.tags,
    };
  }
  return { qubes, labels: Object.keys(live.labels), pools: live.pools };
}

function problemOf(d: TemplateDiagnostic): TemplateProblem {
  return { file: d.file, line: d.line, code: d.code, severity: d.severity, message: d.message };
}

/** Checks the stack against what was read; the model, or the problems that stop it. */
export function modelOf(run: TemplateRun, system: StackSystem): { model: StackModel } | { problems: TemplateProblem[] } {
  const r = checkStack({ readFile: run.readFile }, run.file, { system });
  const errors = r.diagnostics.filter((d) => d.severity === "error");
  if (errors.length || !r.model) return { problems: (errors.length ? errors : r.diagnostics).map(problemOf) };
  return { model: r.model };
}

/** One line for a failure of the SDK (a qubesd exception keeps its class). */
export function failureText(e: unknown): string {
  const err = e as { qubesType?: string; message?: string };
  return err?.qubesType ? `${err.qubesType}: ${err.message}` : e instanceof Error ? e.message : String(e);
}

/** `qubes/templatePlan`: reads the machine and plans the stack. Never rejects. */
export async function planTemplate(run: TemplateRun): Promise<TemplatePlanResult> {
  let description = "no machine";
  try {
    const m = await openMachine(run);
    description = m.description;
    const live = await m.sdk.readLight(m.qubes, m.policy);
    const checked = modelOf(run, stackSystemOfLive(live));
    if ("problems" in checked) {
      const n = checked.problems.filter((p) => p.severity === "error").length;
      return { file: run.file, connection: description, error: `${n} error${n === 1 ? "" : "s"} in the stack: fix them before planning`, problems: checked.problems };
    }
    const model = checked.model;
    const scope = m.sdk.planScope(model, live);
    await m.sdk.readDeep(m.qubes, m.policy, live, scope);
    const options = {
      adopt: !!model.options?.adopt,
      prune: !!model.options?.prune,
      restart: model.options?.restart ?? "never",
      ...(m.policyDir ? { policyDir: m.policyDir } : {}),
    } as const;
    let plan = m.sdk.computePlan(model, live, scope, options);
    // Policy writes and tag changes are marked (and ordered) by their decision changes, as `qkit template plan` does.
    if (m.sdk.writesPolicy(model, live) || m.sdk.changesTags(plan)) {
      const inputs = await m.sdk.readWhatIfInputs({ qubes: m.qubes, policy: m.policy });
      plan = m.sdk.computePlan(model, live, scope, { ...options, ...m.sdk.effectOptions(inputs, model) });
    }
    const running = Object.values(live.qubes)
      .filter((q) => q.state === "Running" || q.state === "Paused" || q.state === "Suspended")
      .map((q) => q.name);
    return { file: run.file, connection: description, plan, running };
  } catch (e) {
    return { file: run.file, connection: description, error: `cannot plan: ${failureText(e)}` };
  }
}

/** `qubes/templateWhatif`: the stack's expectations and the decisions it changes, evaluated in memory. Never rejects. */
export async function whatifTemplate(run: TemplateRun): Promise<TemplateWhatifResult> {
  let description = "no machine";
  try {
    const m = await openMachine(run);
    description = m.description;
    const [system, policy] = await Promise.all([m.sdk.readWhatIfSystem(m.qubes), m.policyTexts()]);
    const checked = modelOf(run, stackSystemOf(prepareSystemInfo(system)));
    if ("problems" in checked) {
      const n = checked.problems.filter((p) => p.severity === "error").length;
      return { file: run.file, connection: description, error: `${n} error${n === 1 ? "" : "s"} in the stack: fix them before the what-if`, problems: checked.problems };
    }
    const report = m.sdk.whatIf({ system, policy, stack: checked.model });
    return {
      file: run.file,
      connection: description,
      ok: report.ok,
      expectations: report.expectations.map((e) => ({ text: e.text, ok: e.ok, ...(e.problem ? { problem: e.problem } : {}) })),
      loadErrors: report.loadErrors.map((l) => ({ when: l.when, message: l.error.message })),
      changes: report.changes.flatMap((g) =>
        g.changes.map((c) => ({
          service: c.service,
          argument: c.argument,
          source: c.source,
          target: c.target,
          kind: c.kind,
          before: m.sdk.describeOutcome(c.before),
          after: m.sdk.describeOutcome(c.after),
        })),
      ),
    };
  } catch (e) {
    return { file: run.file, connection: description, error: `cannot run what-if: ${failureText(e)}` };
  }
}

/** The devices a backend offers in a class, for port completion. Rejects when the machine cannot be read. */
export async function templateDevices(run: TemplateRun, backend: string, devclass: string): Promise<LiveDevice[]> {
  const m = await openMachine(run);
  const infos = await m.qubes.run(m.sdk.calls.deviceAvailable(backend, devclass));
  return infos.map((d) => {
    const description = [d.vendor, d.product ?? d.name].filter((x) => x && x !== "unknown").join(" ");
    return { devclass, backend, port: d.portId, deviceId: d.deviceId, ...(description ? { description } : {}) };
  });
}
