/**
 * The client against the simulator (sdk/src/sim) on a real Unix socket: the
 * system snapshot, the event cache, and the `qkit` commands (qube, system,
 * events, policy pull/push with token conflicts).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyAdmin, Qubes, UnixSocketTransport, systemInfo } from "@qubes-kit/sdk";
import { startSimulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { evaluate, prepareSystemInfo, type RawSystemInfo } from "@qubes-kit/language";
import { runQkit } from "../helpers/qkit.js";

const SYSTEM: RawSystemInfo = {
  domains: {
    dom0: { internal: null, tags: [], type: "AdminVM", template_for_dispvms: false, default_dispvm: "default-dvm", icon: "adminvm-black", label: "0x595959", guivm: null, relayvm: null, transport_rpc: null, power_state: "Running", uuid: "00000000-0000-0000-0000-000000000000" },
    "fedora-41": { internal: null, tags: [], type: "TemplateVM", template_for_dispvms: false, default_dispvm: "default-dvm", icon: "templatevm-black", label: "0x595959", guivm: "dom0", relayvm: null, transport_rpc: null, power_state: "Halted", uuid: "6f5a4b3c-2d1e-4f00-8a9b-000000000001" },
    work: { internal: null, tags: ["gpg-client"], type: "AppVM", template_for_dispvms: false, default_dispvm: "default-dvm", icon: "appvm-blue", label: "0x3874d8", guivm: "dom0", relayvm: null, transport_rpc: null, power_state: "Running", uuid: "6f5a4b3c-2d1e-4f00-8a9b-000000000002" },
    vault: { internal: null, tags: [], type: "AppVM", template_for_dispvms: false, default_dispvm: "default-dvm", icon: "appvm-black", label: "0x595959", guivm: "dom0", relayvm: null, transport_rpc: null, power_state: "Halted", uuid: "6f5a4b3c-2d1e-4f00-8a9b-000000000003" },
    "default-dvm": { internal: null, tags: [], type: "AppVM", template_for_dispvms: true, default_dispvm: "default-dvm", icon: "appvm-red", label: "0xcc0000", guivm: "dom0", relayvm: null, transport_rpc: null, power_state: "Halted", uuid: "6f5a4b3c-2d1e-4f00-8a9b-000000000004" },
    "default-mgmt-dvm": { internal: "1", tags: [], type: "AppVM", template_for_dispvms: true, default_dispvm: "default-dvm", icon: "appvm-black", label: "0x595959", guivm: "dom0", relayvm: null, transport_rpc: null, power_state: "Halted", uuid: "6f5a4b3c-2d1e-4f00-8a9b-000000000005" },
  },
};

const POLICY = {
  "30-user.policy": "qubes.Gpg * work vault allow\nqubes.Gpg * @anyvm @anyvm deny\n",
  "include/admin-mgmt": "admin.vm.List * mgmt @adminvm allow target=dom0\n",
  // Listed by policy.include.List, but policy.include.Get refuses the dot in its name.
  "include/getdate-4.0": "qubes.GetDate * @anyvm @anyvm allow\n",
};

const dir = mkdtempSync(join(tmpdir(), "qkit-sim-"));
const socket = join(dir, "qubesd.sock");
let server: SimulatorServer;

beforeAll(async () => {
  server = await startSimulator({ socket, system: SYSTEM, policy: { ...POLICY } });
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

const qubes = () => new Qubes({ transport: new UnixSocketTransport({ path: socket, servicesOverSocket: true }) });

/** Runs `qkit` in process; returns exit code and output. */
const qkit = (...argv: string[]) => runQkit(argv, { cwd: dir, env: { QUBESD_SOCKET: socket } });

describe("system snapshot through the admin api", () => {
  it("equals the simulator's own GetSystemInfo, with upstream's label icon", async () => {
    const got = await systemInfo(qubes());
    const want = server.simulator.systemInfo();
    expect(Object.keys(got.domains).sort()).toEqual(Object.keys(want.domains).sort());
    for (const [name, info] of Object.entries(got.domains)) {
      const { icon, ...rest } = info;
      const { icon: _wantIcon, ...wantRest } = want.domains[name]!;
      expect(rest).toEqual(wantRest);
      // qubesd's internal.GetSystemInfo sends the label's icon, `appvm-<label>`.
      expect(icon).toMatch(/^appvm-/);
      expect(Object.keys(info)).toEqual(["internal", "tags", "type", "template_for_dispvms", "default_dispvm", "icon", "label", "guivm", "relayvm", "transport_rpc", "power_state", "uuid"]);
    }
  });
});

describe("event cache", () => {
  it("loads every qube and stays coherent from events", async () => {
    const q = qubes();
    const cache = q.cache();
    const ac = new AbortController();
    const seen: string[] = [];
    let wake: (() => void) | undefined;
    const following = cache.follow({
      signal: ac.signal,
      onEvent: (e) => {
        seen.push(e.event);
        wake?.();
      },
    });
    const until = async (pred: () => boolean) => {
      while (!pred()) await new Promise<void>((r) => (wake = r));
    };
    await until(() => cache.loadCount > 0);
    expect([...cache.qubes.keys()].sort()).toEqual(Object.keys(SYSTEM.domains).sort());
    expect(cache.qubes.get("work")!.tags!.has("gpg-client")).toBe(true);

    await q.qube("work").tags.add("project-x");
    await until(() => cache.qubes.get("work")!.tags!.has("project-x"));
    await q.qube("work").setProperty("memory", 1234);
    await until(() => cache.qubes.get("work")!.properties.get("memory")?.value === 1234);
    expect(cache.qubes.get("work")!.properties.get("memory")!.isDefault).toBe(false);
    await q.qube("work").resetProperty("memory");
    await until(() => !cache.qubes.get("work")!.properties.has("memory"));
    expect((await cache.getProperty("work", "memory")).isDefault).toBe(true);
    expect((await cache.getGlobal("default_dispvm")).value).toBe("default-dvm");
    await q.setProperty("default_dispvm", "default-mgmt-dvm");
    await until(() => !cache.globals.has("default_dispvm"));
    expect((await cache.getGlobal("default_dispvm")).value).toBe("default-mgmt-dvm");
    await q.resetProperty("default_dispvm");
    await q.createQube({ class: "AppVM", name: "fresh", label: "green" });
    await until(() => cache.qubes.has("fresh"));
    await q.qube("fresh").remove();
    await until(() => !cache.qubes.has("fresh"));
    ac.abort();
    await following;
    expect(seen[0]).toBe("connection-established");
  });
});

describe("qube lifecycle through the object model", () => {
  it("clones a qube with its non-default properties, tags, features and firewall", async () => {
    const q = qubes();
    const work = q.qube("work");
    await work.setProperty("memory", 777);
    await work.features.set("service.cups", true);
    await work.firewall.set([{ action: "accept", proto: "tcp", dsthost: "qubes-os.org", dstports: 443 }, { action: "drop" }]);
    const clone = await q.cloneQube("work", "work-clone", { ignoreVolumes: true });
    expect(await clone.get("memory")).toBe(777);
    expect(await clone.get("label")).toBe(await work.get("label"));
    expect(await clone.tags.has("gpg-client")).toBe(true);
    expect(await clone.features.get("service.cups")).toBe("1");
    expect(await clone.firewall.get()).toEqual(await work.firewall.get());
    expect((await clone.info()).class).toBe("AppVM");
    await clone.remove();
    expect(await q.has("work-clone")).toBe(false);
  });

  it("creates a disposable and reads its state", async () => {
    const q = qubes();
    const disp = await q.qube("default-dvm").createDisposable();
    expect(disp.name).toMatch(/^disp[0-9]+$/);
    expect((await disp.info()).class).toBe("DispVM");
    expect(await disp.getQube("template")).not.toBeNull();
    expect((await disp.currentState()).powerState).toBe(await disp.powerState());
  });
});

describe("qkit commands against the simulator", () => {
  it("qube ls --json", async () => {
    const r = await qkit("qube", "ls", "--json");
    expect(r.code).toBe(0);
    const list = JSON.parse(r.out) as { name: string; class: string; state: string }[];
    expect(list.find((e) => e.name === "work")).toMatchObject({ class: "AppVM", state: "Running" });
    expect(list.map((e) => e.name)).toContain("dom0");
  });

  it("qube ls prints a table", async () => {
    const r = await qkit("qube", "ls");
    expect(r.code).toBe(0);
    expect(r.out.split("\n")[0]).toMatch(/^NAME +CLASS +STATE +LABEL +TEMPLATE +NETVM$/);
  });

  it("qube prefs: get, set, reset, list", async () => {
    expect((await qkit("qube", "prefs", "vault", "netvm", "")).code).toBe(0);
    expect((await qkit("qube", "prefs", "vault", "netvm")).out).toBe("\n");
    expect((await qkit("qube", "prefs", "vault", "netvm", "--default")).code).toBe(0);
    expect((await qkit("qube", "prefs", "vault", "memory", "600")).code).toBe(0);
    expect((await qkit("qube", "prefs", "vault", "memory")).out).toBe("600\n");
    const all = await qkit("qube", "prefs", "vault");
    expect(all.out).toMatch(/^memory +- +600$/m);
    expect(all.out).toMatch(/^label +- +black$/m);
  });

  it("qube prefs reports a typed error with its code (exit 1)", async () => {
    const r = await qkit("qube", "prefs", "vault", "nosuchprop");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/\[qubes-no-such-property-error\]\n$/);
    const bad = await qkit("qube", "prefs", "no/such", "memory");
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/\[invalid-dest\]/);
  });

  it("qube features and tags", async () => {
    expect((await qkit("qube", "features", "work", "service.cups", "1")).code).toBe(0);
    expect((await qkit("qube", "features", "work", "service.cups")).out).toBe("1\n");
    expect((await qkit("qube", "features", "work")).out).toMatch(/^service\.cups +1$/m);
    expect((await qkit("qube", "features", "work", "service.cups", "--unset")).code).toBe(0);
    expect((await qkit("qube", "features", "work", "service.cups")).code).toBe(1);
    expect((await qkit("qube", "tags", "vault", "add", "secret")).code).toBe(0);
    expect((await qkit("qube", "tags", "vault")).out.split("\n")).toContain("secret");
    expect((await qkit("qube", "tags", "vault", "remove", "secret")).code).toBe(0);
    const again = await qkit("qube", "tags", "vault", "remove", "secret");
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/qubes-tag-not-found-error/);
  });

  it("usage errors exit 2", async () => {
    expect((await qkit("qube", "prefs")).code).toBe(2);
    expect((await qkit("qube", "ls", "--bogus")).code).toBe(2);
    expect((await qkit("qube", "tags", "vault", "frob", "x")).code).toBe(2);
    expect((await qkit("qube", "ls", "--socket", "x", "--qrexec")).code).toBe(2);
  });

  it("system snapshot prints GetSystemInfo json", async () => {
    const r = await qkit("system", "snapshot");
    expect(r.code).toBe(0);
    const info = JSON.parse(r.out) as RawSystemInfo;
    expect(info.domains["default-mgmt-dvm"]!.internal).toBe("1");
    expect(info.domains["work"]!.power_state).toBe("Running");
  });

  it("events --count", async () => {
    const r = await qkit("events", "--count", "1", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ subject: null, event: "connection-established", kwargs: {} });
  });

  it("policy pull, then push with changes, and a conflict", async () => {
    const pdir = join(dir, "policy");
    const pulled = await qkit("policy", "pull", pdir);
    expect(pulled.code).toBe(0);
    expect(pulled.err).toMatch(/skipped include\/getdate-4\.0: .*\[unreadable-policy-file\]/);
    expect(existsSync(join(pdir, "include", "getdate-4.0"))).toBe(false);
    expect(readFileSync(join(pdir, "30-user.policy"), "utf8")).toBe(POLICY["30-user.policy"]);
    expect(readFileSync(join(pdir, "include", "admin-mgmt"), "utf8")).toBe(POLICY["include/admin-mgmt"]);
    expect((await qkit("policy", "push", pdir)).out).toBe("nothing to push\n");

    // A local change and a new file go through.
    writeFileSync(join(pdir, "30-user.policy"), "qubes.Gpg * work vault allow\nqubes.Gpg * personal vault ask\n");
    writeFileSync(join(pdir, "40-new.policy"), "qubes.Foo * @anyvm @anyvm deny\n");
    expect((await qkit("policy", "push", pdir, "--dry-run")).out).toBe("would replace 30-user.policy\nwould create 40-new.policy\n");
    const pushed = await qkit("policy", "push", pdir);
    expect(pushed.err).toBe("");
    expect(pushed.code).toBe(0);
    expect(pushed.out).toBe("replaced 30-user.policy\ncreated 40-new.policy\n");
    const admin = new PolicyAdmin(new UnixSocketTransport({ path: socket, servicesOverSocket: true }));
    expect((await admin.get("40-new")).text).toBe("qubes.Foo * @anyvm @anyvm deny\n");

    // Someone else changes the file: the next push reports a conflict and leaves it alone.
    const theirs = await admin.get("30-user");
    await admin.replace("30-user", "qubes.Gpg * @anyvm @anyvm deny\n", theirs.token);
    writeFileSync(join(pdir, "30-user.policy"), "qubes.Gpg * work vault deny\n");
    const conflict = await qkit("policy", "push", pdir);
    expect(conflict.code).toBe(1);
    expect(conflict.err).toMatch(/conflict: 30-user\.policy changed on the server/);
    expect((await admin.get("30-user")).text).toBe("qubes.Gpg * @anyvm @anyvm deny\n");

    // An invalid file stops the push before anything is sent.
    writeFileSync(join(pdir, "30-user.policy"), "qubes.Gpg * bad\n");
    const invalid = await qkit("policy", "push", pdir);
    expect(invalid.code).toBe(1);
    expect(invalid.err).toMatch(/30-user\.policy:1: .*\[wrong-number-of-fields\]/);

    // A deleted local file is removed on the server with its token.
    unlinkSync(join(pdir, "40-new.policy"));
    writeFileSync(join(pdir, "30-user.policy"), "qubes.Gpg * @anyvm @anyvm deny\n");
    expect((await qkit("policy", "pull", pdir)).code).toBe(0);
    expect(existsSync(join(pdir, "40-new.policy"))).toBe(true);
    unlinkSync(join(pdir, "40-new.policy"));
    const removed = await qkit("policy", "push", pdir);
    expect(removed.out).toBe("removed 40-new.policy\n");
    expect(await admin.list()).toEqual(["30-user"]);
  });

  it("builds a PolicyFileSystem of the live policy that the language core loads and evaluates", async () => {
    const admin = new PolicyAdmin(new UnixSocketTransport({ path: socket, servicesOverSocket: true }));
    const fs = await admin.fileSystem();
    expect(fs.readFile("/etc/qubes/policy.d/30-user.policy")).toBe("qubes.Gpg * @anyvm @anyvm deny\n");
    expect(fs.readFile("/etc/qubes/policy.d/include/admin-mgmt")).toBe(POLICY["include/admin-mgmt"]);
    await admin.replace("30-user", "qubes.Gpg * work vault allow\nqubes.Gpg * @anyvm @anyvm deny\n", "any");
    const loaded = await admin.load();
    if (!loaded.ok) throw new Error(loaded.error.message);
    const system = prepareSystemInfo(await systemInfo(qubes()));
    expect(evaluate(loaded.policy, { service: "qubes.Gpg", source: "work", target: "vault" }, system)).toMatchObject({ action: "allow", target: "vault" });
    expect(evaluate(loaded.policy, { service: "qubes.Gpg", source: "vault", target: "work" }, system)).toMatchObject({ action: "deny" });
  });
});
