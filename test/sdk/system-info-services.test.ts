/**
 * What each qube advertises (`supported_rpc`), end to end against the simulator over a socket:
 * `systemInfo(qubes, { services: true })`, `advertisedServices`, `qkit system snapshot --services`,
 * and the `service-not-provided` analysis of `qkit policy check --system FILE` on that snapshot.
 * The default snapshot keeps qubesd's keys and order, byte for byte.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Qubes, UnixSocketTransport, addAdvertisedServices, advertisedServices, calls, systemInfo } from "@qubes-kit/sdk";
import { startSimulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { runQkit } from "../helpers/qkit.js";

const FIXTURE = fileURLToPath(new URL("../fixtures/sdk/services/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "qkit-services-"));
const socket = join(dir, "qubesd.sock");
let server: SimulatorServer;
const connect = () => new Qubes({ transport: new UnixSocketTransport({ path: socket, servicesOverSocket: true }) });

beforeAll(async () => {
  server = await startSimulator({ socket, system: JSON.parse(readFileSync(FIXTURE + "system.json", "utf8")), policy: FIXTURE + "policy.d" });
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

type Domains = Record<string, Record<string, unknown>>;
const FEDORA = ["qubes.Filecopy", "qubes.GetAppmenus", "qubes.OpenInVM", "qubes.OpenURL", "qubes.PostInstall", "qubes.StartApp", "qubes.VMShell", "qubes.WaitForRunningSystem", "qubes.WaitForSession"];
const DEBIAN = [...FEDORA, "qubes.Gpg", "qubes.GpgImportKey"].sort();

describe("systemInfo({ services: true }) against the simulator", () => {
  it("lists each qube's services: its own features first, else its template chain's; unknown qubes have no key", async () => {
    const info = (await systemInfo(connect(), { services: true })).domains as Domains;
    const services = Object.fromEntries(Object.entries(info).map(([n, d]) => [n, d["supported_rpc"]]));
    expect(services).toEqual({
      dom0: undefined,
      "fedora-42": FEDORA,
      "debian-12": DEBIAN,
      // Own `my.Backup`; its own empty `qubes.VMShell` hides the template's.
      work: [...FEDORA.filter((s) => s !== "qubes.VMShell"), "my.Backup"].sort(),
      vault: DEBIAN,
      "default-dvm": FEDORA,
      windows: undefined,
    });
  });

  it("agrees with admin.vm.feature.CheckWithTemplate for every advertised feature", async () => {
    const qubes = connect();
    const info = (await systemInfo(qubes, { services: true })).domains as Domains;
    const names = new Set([...FEDORA, ...DEBIAN, "my.Backup", "qubes.VMShell"]);
    for (const [qube, d] of Object.entries(info)) {
      if (qube === "dom0") continue;
      const listed = new Set((d["supported_rpc"] as string[] | undefined) ?? []);
      for (const s of names) {
        const v = await qubes.run(calls.featureGet(qube, `supported-rpc.${s}`, "CheckWithTemplate")).catch(() => undefined);
        expect(listed.has(s), `${qube} ${s}`).toBe(v !== undefined && v !== "");
      }
    }
  });

  it("adds the key last and leaves everything else as the default snapshot has it", async () => {
    const qubes = connect();
    const plain = await systemInfo(qubes);
    const rich = await systemInfo(qubes, { services: true });
    for (const [name, d] of Object.entries(rich.domains as Domains)) {
      const keys = Object.keys(d);
      if ("supported_rpc" in d) expect(keys[keys.length - 1]).toBe("supported_rpc");
      const { supported_rpc: _, ...rest } = d;
      expect(JSON.stringify(rest), name).toBe(JSON.stringify((plain.domains as Domains)[name]));
    }
    expect(Object.values(plain.domains).some((d) => "supported_rpc" in d)).toBe(false);
  });

  it("advertisedServices + addAdvertisedServices give the same model from a plain snapshot", async () => {
    const qubes = connect();
    const rich = await systemInfo(qubes, { services: true });
    const plain = await systemInfo(qubes);
    expect(JSON.stringify(addAdvertisedServices(plain, await advertisedServices(qubes)))).toBe(JSON.stringify(rich));
  });

  it("follows a feature changed on the live system", async () => {
    const qubes = connect();
    await qubes.run(calls.featureSet("vault", "supported-rpc.my.Restore", "1"));
    try {
      const info = (await systemInfo(qubes, { services: true })).domains as Domains;
      expect(info["vault"]!["supported_rpc"]).toContain("my.Restore");
      expect(info["fedora-42"]!["supported_rpc"]).not.toContain("my.Restore");
    } finally {
      await qubes.run(calls.featureRemove("vault", "supported-rpc.my.Restore"));
    }
  });
});

describe("qkit system snapshot --services, then qkit policy check --system", () => {
  it("writes supported_rpc only with --services, and the analysis reports what no qube provides", async () => {
    const plain = await runQkit(["system", "snapshot", "--no-wiring", "--socket", socket], { cwd: dir });
    expect(plain.err).toBe("");
    expect(plain.out).not.toContain("supported_rpc");
    const r = await runQkit(["system", "snapshot", "--no-wiring", "--services", "--socket", socket], { cwd: dir });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const snap = JSON.parse(r.out) as { domains: Domains };
    expect(snap.domains["vault"]!["supported_rpc"]).toEqual(DEBIAN);
    // Without --services the same file minus the key.
    for (const d of Object.values(snap.domains)) delete d["supported_rpc"];
    expect(JSON.stringify(snap, null, 1) + "\n").toBe(plain.out);

    const file = join(dir, "snap.json");
    writeFileSync(file, r.out);
    const check = await runQkit(["policy", "check", "--format", "json", "--system", file, FIXTURE + "policy.d"], { cwd: dir });
    const found = (JSON.parse(check.out) as { diagnostics: Array<{ code: string; line: number; severity: string; message: string }> }).diagnostics.filter((d) => d.code === "service-not-provided");
    expect(found.map((d) => [d.line, d.severity, d.message])).toEqual([
      [3, "info", "no qube this rule can call provides `my.Restore`: `vault` does not advertise it, so the calls it lets through fail at the target"],
      [5, "info", "no qube this rule can call provides `qubes.Gpg`: `default-dvm` does not advertise it, so the calls it lets through fail at the target"],
    ]);
    // SARIF: the rule is described, and its results are notes.
    const sarif = JSON.parse((await runQkit(["policy", "check", "--format", "sarif", "--system", file, FIXTURE + "policy.d"], { cwd: dir })).out) as {
      runs: Array<{ tool: { driver: { rules: Array<{ id: string; defaultConfiguration: { level: string } }> } }; results: Array<{ ruleId: string; level: string }> }>;
    };
    expect(sarif.runs[0]!.tool.driver.rules.find((r) => r.id === "service-not-provided")?.defaultConfiguration.level).toBe("note");
    expect(sarif.runs[0]!.results.filter((r) => r.ruleId === "service-not-provided").map((r) => r.level)).toEqual(["note", "note"]);
    // The snapshot without --services: nothing to say.
    const bare = join(dir, "bare.json");
    writeFileSync(bare, plain.out);
    const quiet = await runQkit(["policy", "check", "--format", "json", "--system", bare, FIXTURE + "policy.d"], { cwd: dir });
    expect(quiet.out).not.toContain("service-not-provided");
  });

  it("--services is in the usage", async () => {
    const r = await runQkit(["system", "snapshot", "--help"], { cwd: dir });
    expect(r.out + r.err).toContain("--services");
  });
});

describe("the demo simulator advertises services on its templates", () => {
  it("qubes based on a template inherit its supported-rpc features; dom0 has none", async () => {
    const raw = JSON.parse(readFileSync(fileURLToPath(new URL("../fixtures/sim/demo-system.json", import.meta.url)), "utf8"));
    const sock = join(dir, "demo.sock");
    const demo = await startSimulator({ socket: sock, system: raw });
    try {
      const qubes = new Qubes({ transport: new UnixSocketTransport({ path: sock, servicesOverSocket: true }) });
      const info = (await systemInfo(qubes, { services: true })).domains as Domains;
      const own = (q: string) => Object.keys((raw.domains[q].features ?? {}) as Record<string, string>).map((f) => f.slice("supported-rpc.".length));
      for (const t of ["fedora-41", "debian-12", "fedora-41-minimal"]) expect(info[t]!["supported_rpc"]).toEqual(own(t));
      const template = (q: string) => (raw.domains[q].template as string | undefined) ?? "fedora-41";
      for (const q of ["work", "vault", "default-dvm"]) {
        const t = (await qubes.run(calls.propertyGet("template", q))).value as string;
        expect(info[q]!["supported_rpc"], q).toEqual(own(t === "" ? template(q) : t));
      }
      expect("supported_rpc" in info["dom0"]!).toBe(false);
    } finally {
      await demo.close();
    }
  });
});

describe("supported_rpc is what CheckWithTemplate answers, on random template chains", () => {
  it("per qube and service: listed exactly when the feature, looked up with the template chain, is not empty", async () => {
    const { Simulator, simulatorTransport } = await import("@qubes-kit/sdk/sim");
    const fc = (await import("fast-check")).default;
    const SERVICES = ["a.One", "b.Two", "c.Three"];
    const value = fc.constantFrom(undefined, undefined, "1", "");
    const features = fc.tuple(value, value, value).map((vs) => Object.fromEntries(vs.flatMap((v, i) => (v === undefined ? [] : [[`supported-rpc.${SERVICES[i]}`, v]]))));
    const shape = fc.record({ t1: features, t2: features, app: features, dvm: features, disp: features, appTemplate: fc.constantFrom("t1", "t2"), dvmTemplate: fc.constantFrom("t1", "t2") });
    await fc.assert(
      fc.asyncProperty(shape, async (s) => {
        const q = (type: string, extra: Record<string, unknown>) => ({ internal: null, tags: [], type, template_for_dispvms: false, default_dispvm: null, icon: "appvm-red", label: "0xcc0000", guivm: "dom0", relayvm: null, transport_rpc: null, power_state: "Halted", uuid: "", ...extra });
        const raw = {
          domains: {
            dom0: q("AdminVM", { uuid: "00000000-0000-0000-0000-000000000000" }),
            t1: q("TemplateVM", { features: s.t1 }),
            t2: q("TemplateVM", { features: s.t2 }),
            app: q("AppVM", { template: s.appTemplate, features: s.app }),
            dvm: q("AppVM", { template: s.dvmTemplate, template_for_dispvms: true, features: s.dvm }),
            disp1: q("DispVM", { template: "dvm", features: s.disp }),
          },
        };
        const qubes = new Qubes({ transport: simulatorTransport(new Simulator({ system: raw as never })) });
        const info = (await systemInfo(qubes, { services: true })).domains as Domains;
        for (const name of ["t1", "t2", "app", "dvm", "disp1"]) {
          const listed = (info[name]!["supported_rpc"] as string[] | undefined) ?? [];
          expect(listed).toEqual([...listed].sort());
          for (const svc of SERVICES) {
            const v = await qubes.run(calls.featureGet(name, `supported-rpc.${svc}`, "CheckWithTemplate")).catch(() => undefined);
            expect(listed.includes(svc), `${name} ${svc}`).toBe(v !== undefined && v !== "");
          }
          if ("supported_rpc" in info[name]!) expect(listed.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe("qkit policy check --system live", () => {
  it("reads what the qubes advertise, as a --services snapshot does", async () => {
    const r = await runQkit(["policy", "check", "--format", "json", "--system", "live", "--socket", socket, FIXTURE + "policy.d"], { cwd: dir });
    expect(r.err).toBe("");
    const found = (JSON.parse(r.out) as { diagnostics: Array<{ code: string; line: number }> }).diagnostics.filter((d) => d.code === "service-not-provided");
    expect(found.map((d) => d.line)).toEqual([3, 5]);
  });
});
