/**
 * Integration over a real Unix socket: the SDK client against the simulator
 * when several writers race on one policy file, and when the server goes
 * away and comes back while a client follows the event stream.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync, unlinkSync, existsSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PolicyAdmin, PolicyAdminTokenException, PolicyValidationError, Qubes, UnixSocketTransport } from "@qubes-kit/sdk";
import { startSimulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { runQkit } from "../helpers/qkit.js";

const qkit = (socket: string, ...argv: string[]) => runQkit(argv, { cwd: dir, env: { QUBESD_SOCKET: socket } });

const dir = mkdtempSync(join(tmpdir(), "qkit-integration-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SYSTEM = {
  domains: {
    dom0: { internal: null, tags: [], type: "AdminVM", template_for_dispvms: false, default_dispvm: null, icon: "adminvm-black", label: "0x595959", guivm: null, relayvm: null, transport_rpc: null, power_state: "Running", uuid: "00000000-0000-0000-0000-000000000000" },
    work: { internal: null, tags: [], type: "AppVM", template_for_dispvms: false, default_dispvm: null, icon: "appvm-blue", label: "0x3874d8", guivm: "dom0", relayvm: null, transport_rpc: null, power_state: "Halted", uuid: "1b9b0d3c-0a39-4a4c-9a5d-000000000001" },
  },
};

describe("concurrent writers of one policy file", () => {
  it("let exactly one win; the others get a conflict and nothing is lost", async () => {
    const socket = join(dir, "policy.sock");
    const server = await startSimulator({ socket, system: SYSTEM, policy: { "30-user.policy": "qubes.Filecopy * @anyvm @anyvm deny\n" } });
    try {
      const writers = Array.from({ length: 8 }, () => new PolicyAdmin(new UnixSocketTransport({ path: socket, servicesOverSocket: true })));
      // Everyone reads the same version, then everyone writes at once.
      const reads = await Promise.all(writers.map((w) => w.get("30-user")));
      expect(new Set(reads.map((r) => r.token)).size).toBe(1);
      const texts = writers.map((_, i) => `qubes.Filecopy * work vault allow\n# writer ${i}\n`);
      const results = await Promise.allSettled(writers.map((w, i) => w.replace("30-user", texts[i]!, reads[i]!.token)));
      const won = results.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
      expect(won).toHaveLength(1);
      for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(PolicyAdminTokenException);
      // The winner's text is what the server holds, whole.
      const now = await writers[0]!.get("30-user");
      expect(now.text).toBe(texts[won[0]!]);
      // A loser that reads again can write on top of it.
      const loser = writers.find((_, i) => i !== won[0])!;
      await loser.replace("30-user", now.text + "qubes.Gpg * work vault ask\n", now.token);
      expect((await loser.get("30-user")).text).toBe(now.text + "qubes.Gpg * work vault ask\n");
    } finally {
      await server.close();
    }
  });
});

describe("event streams across a server restart", () => {
  it("reconnect, see connection-established again, and keep the cache coherent", async () => {
    const socket = join(dir, "restart.sock");
    let server: SimulatorServer = await startSimulator({ socket, system: SYSTEM });
    const qubes = new Qubes({ transport: new UnixSocketTransport({ path: socket }) });
    const cache = qubes.cache();
    const ac = new AbortController();
    const seen: string[] = [];
    let wake: (() => void) | undefined;
    const following = cache.follow({
      signal: ac.signal,
      reconnectDelay: 20,
      onEvent: (e) => {
        seen.push(e.event);
        wake?.();
      },
    });
    const until = async (pred: () => boolean) => {
      const deadline = Date.now() + 20_000;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`timed out; events so far: ${seen.join(", ")}`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
    };
    try {
      await until(() => cache.loadCount > 0);
      expect(cache.qubes.has("work")).toBe(true);
      await qubes.qube("work").tags.add("before-restart");
      await until(() => cache.qubes.get("work")?.tags?.has("before-restart") === true);

      // The server goes away and comes back with a different system.
      await server.close();
      server = await startSimulator({ socket, system: { domains: { ...SYSTEM.domains, vault: { ...SYSTEM.domains.work, uuid: "1b9b0d3c-0a39-4a4c-9a5d-000000000004" } } } });
      await until(() => seen.filter((e) => e === "connection-established").length >= 2);
      // The cache resynchronised from the new server: the new qube is there, the old tag is gone.
      await until(() => cache.qubes.has("vault"));
      expect(cache.qubes.get("work")?.tags?.has("before-restart")).toBe(false);
      await qubes.qube("vault").tags.add("after-restart");
      await until(() => cache.qubes.get("vault")?.tags?.has("after-restart") === true);
    } finally {
      ac.abort();
      await following.catch(() => undefined);
      await server.close();
    }
  });
});

describe("policy writes that would disable the whole policy", () => {
  it("are refused before anything is sent", async () => {
    const socket = join(dir, "push.sock");
    const server = await startSimulator({ socket, system: SYSTEM, policy: { "30-user.policy": "qubes.Filecopy * @anyvm @anyvm deny\n" } });
    try {
      const pdir = join(dir, "pulled");
      expect((await qkit(socket, "policy", "pull", pdir)).code).toBe(0);
      // A file name the daemon refuses (upper case): the API would accept it.
      writeFileSync(join(pdir, "40-X.policy"), "qubes.Gpg * work vault allow\n");
      const upper = await qkit(socket, "policy", "push", pdir);
      expect(upper.code).toBe(1);
      expect(upper.err).toMatch(/invalid filename: \/etc\/qubes\/policy\.d\/40-X\.policy \[invalid-filename\]/);
      expect(upper.err).toMatch(/nothing was sent/);
      unlinkSync(join(pdir, "40-X.policy"));
      // An include of a file that does not exist: each file is fine on its own.
      writeFileSync(join(pdir, "40-x.policy"), "!include include/nope\n");
      const missing = await qkit(socket, "policy", "push", pdir);
      expect(missing.code).toBe(1);
      expect(missing.err).toMatch(/not a file: \/etc\/qubes\/policy\.d\/include\/nope \[not-a-file\]/);
      const admin = new PolicyAdmin(new UnixSocketTransport({ path: socket, servicesOverSocket: true }));
      expect(await admin.list()).toEqual(["30-user"]);
      // The client refuses such a name also when used directly.
      await expect(admin.replace("40-X", "qubes.Gpg * work vault allow\n", "new")).rejects.toBeInstanceOf(PolicyValidationError);
      // And a good change still goes through.
      writeFileSync(join(pdir, "40-x.policy"), "qubes.Gpg * work vault allow\n");
      expect((await qkit(socket, "policy", "push", pdir)).out).toBe("created 40-x.policy\n");
    } finally {
      await server.close();
    }
  });
});

describe("the simulator's socket", () => {
  it("never takes over a live socket, replaces a stale one, and is 0600", async () => {
    const socket = join(dir, "live.sock");
    const first = await startSimulator({ socket, system: SYSTEM });
    try {
      expect(statSync(socket).mode & 0o777).toBe(0o600);
      const err = await startSimulator({ socket, system: SYSTEM }).catch((e: NodeJS.ErrnoException) => e);
      expect((err as NodeJS.ErrnoException).code).toBe("EADDRINUSE");
      // The first one still answers.
      const q = new Qubes({ transport: new UnixSocketTransport({ path: socket }) });
      expect((await q.list()).map((x) => x.name)).toContain("work");
    } finally {
      await first.close();
    }
    expect(existsSync(socket)).toBe(false);
    // A stale socket file (nobody listening) is replaced.
    const stale = net.createServer();
    await new Promise<void>((r) => stale.listen(socket, r));
    await new Promise<void>((r) => {
      // Closing a server unlinks its socket; recreate a dead socket file by hand instead.
      stale.close(() => r());
    });
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(socket, r));
    (dead as unknown as { _handle: { close(): void } | null })._handle?.close();
    const second = await startSimulator({ socket, system: SYSTEM });
    await second.close();
  });

  it("`qkit sim serve` refuses a policy directory that does not exist", async () => {
    const r = await qkit(join(dir, "unused.sock"), "sim", "serve", "--socket", join(dir, "x.sock"), "--policy-dir", join(dir, "no-such-dir"));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--policy-dir: `[^`]*no-such-dir`: No such file or directory \[usage\]/);
    expect(existsSync(join(dir, "no-such-dir"))).toBe(false);
  });
});
