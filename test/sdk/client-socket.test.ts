/**
 * The transports over real Unix sockets and real processes: framing,
 * half-close, reply kinds, event streams, timeouts, abort, the 64 KiB limit,
 * and the command transport's exit codes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CommandTransport,
  PolicyAdmin,
  PolicyAdminTokenException,
  QubesAbortError,
  QubesEmptyReplyError,
  QubesRequestTooLargeError,
  QubesServiceCallError,
  QubesTimeoutError,
  QubesTransportError,
  QubesVMNotFoundError,
  Qubes,
  UnixSocketTransport,
  type QubesEvent,
} from "@qubes-kit/sdk";

/** What the test server got, per connection. */
interface Seen {
  request: Buffer;
  /** Whether the client half-closed (we saw EOF) before the server answered. */
  halfClosed: boolean;
  closedByClient: Promise<void>;
}

type Behaviour = (req: Buffer, sock: Socket) => void;

const dir = mkdtempSync(join(tmpdir(), "qkit-sock-"));
const path = join(dir, "qubesd.sock");
let server: Server;
const seen: Seen[] = [];
let connections = 0;

/** Chooses the server's answer from the request header. */
const behaviours: Record<string, Behaviour> = {
  "admin.vm.List": (_req, s) => s.end("0\0dom0 class=AdminVM state=Running uuid=00000000-0000-0000-0000-000000000000\nwork class=AppVM state=Halted uuid=11111111-2222-3333-4444-555555555555\n"),
  "admin.vm.property.Get": (_req, s) => {
    // Send the reply in two chunks to test reassembly.
    s.write("0\0default=False ");
    setTimeout(() => s.end("type=int 400"), 5);
  },
  "admin.vm.feature.Get": (_req, s) => s.end("2\0QubesVMNotFoundError\0\0No such domain: 'nosuch'\0"),
  "admin.vm.Kill": (_req, s) => s.end(),
  // Answers too late: by then the client has given up and closed (the write then fails).
  "admin.vm.Start": (_req, s) => setTimeout(() => s.end("0\0"), 1000),
  "admin.label.List": (req, s) => s.end(`0\0${req.length}`),
  "admin.Events": (_req, s) => {
    s.write("1\0\0connection-established\0\0");
    let n = 0;
    const t = setInterval(() => {
      if (s.destroyed) return clearInterval(t);
      s.write(`1\0work\0domain-feature-set:x\0feature\0x\0value\0${n++}\0\0`);
    }, 2);
    s.on("close", () => clearInterval(t));
  },
  "admin.vm.Stats": (_req, s) => s.end("1\0\0connection-established\0\0" + "1\0work\0vm-stats\0memory_kb\x00409600\0cpu_time\x0012\0cpu_usage\x003\0online_vcpus\x002\0\0"),
};

beforeAll(async () => {
  server = createServer({ allowHalfOpen: true }, (sock) => {
    connections++;
    const chunks: Buffer[] = [];
    let resolveClosed!: () => void;
    const entry: Seen = { request: Buffer.alloc(0), halfClosed: false, closedByClient: new Promise((r) => (resolveClosed = r)) };
    seen.push(entry);
    sock.on("error", () => undefined);
    sock.on("close", () => resolveClosed());
    sock.on("data", (c) => chunks.push(c));
    sock.on("end", () => {
      entry.halfClosed = true;
      entry.request = Buffer.concat(chunks);
      const header = entry.request.subarray(0, entry.request.indexOf(0)).toString("latin1");
      const method = header.split("+")[0]!;
      (behaviours[method] ?? ((_r: Buffer, s: Socket) => s.end("2\0ProtocolError\0\0no such method\0")))(entry.request, sock);
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

const qubes = (timeout?: number) => new Qubes({ transport: new UnixSocketTransport({ path }), ...(timeout ? { timeout } : {}) });

describe("unix socket transport", () => {
  it("writes the exact request bytes, half-closes, and parses a success", async () => {
    const list = await qubes().list();
    expect(list.map((e) => [e.name, e.class, e.state])).toEqual([
      ["dom0", "AdminVM", "Running"],
      ["work", "AppVM", "Halted"],
    ]);
    const last = seen[seen.length - 1]!;
    expect(last.halfClosed).toBe(true);
    expect(last.request.toString("latin1")).toBe("admin.vm.List+ dom0 name dom0\0");
  });

  it("reassembles a reply sent in pieces", async () => {
    const v = await qubes().qube("work").getProperty("memory");
    expect(v).toEqual({ isDefault: false, type: "int", value: 400, raw: "400" });
  });

  it("sends the payload after the NUL", async () => {
    await expect(qubes().qube("work").setProperty("memory", 800)).rejects.toThrow("no such method");
    expect(seen[seen.length - 1]!.request.toString("latin1")).toBe("admin.vm.property.Set+memory dom0 name work\x00800");
  });

  it("turns an exception reply into the typed error with the literal message", async () => {
    const err = await qubes().qube("work").features.getOrThrow("x").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QubesVMNotFoundError);
    expect((err as Error).message).toBe("No such domain: 'nosuch'");
  });

  it("reports an empty reply as its own error", async () => {
    await expect(qubes().qube("work").kill()).rejects.toBeInstanceOf(QubesEmptyReplyError);
  });

  it("times out and closes the connection", async () => {
    const before = seen.length;
    const err = await qubes(100).qube("work").start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QubesTimeoutError);
    await seen[before]!.closedByClient;
  });

  it("aborts through an AbortSignal and closes the connection", async () => {
    const before = seen.length;
    const ac = new AbortController();
    const p = qubes().qube("work").start({ signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toBeInstanceOf(QubesAbortError);
    await seen[before]!.closedByClient;
  });

  it("refuses a request over 64 KiB before connecting", async () => {
    const before = connections;
    const big = "x".repeat(65536);
    const err = await qubes().qube("work").setNotes(big.slice(0, 65520)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QubesRequestTooLargeError);
    expect(connections).toBe(before);
  });

  it("accepts a request of exactly 64 KiB", async () => {
    const header = "admin.label.List+ dom0 name dom0\0";
    const reply = await qubes().call("admin.label.List", "dom0", "", "y".repeat(65536 - header.length), { unchecked: true });
    expect(reply).toBe("65536");
  });

  it("streams events until the consumer stops, then closes the connection", async () => {
    const before = seen.length;
    const got: QubesEvent[] = [];
    for await (const e of qubes().events({ reconnect: false })) {
      got.push(e);
      if (got.length === 5) break;
    }
    expect(got[0]).toEqual({ subject: null, event: "connection-established", kwargs: {} });
    expect(got.slice(1).map((e) => e.kwargs["value"])).toEqual(["0", "1", "2", "3"]);
    await seen[before]!.closedByClient;
  });

  it("stops an event stream through its signal", async () => {
    const ac = new AbortController();
    const got: QubesEvent[] = [];
    for await (const e of qubes().events({ signal: ac.signal })) {
      got.push(e);
      if (got.length === 3) ac.abort();
    }
    expect(got.length).toBeGreaterThanOrEqual(3);
  });

  it("reconnects a stream that ends and sees connection-established again", async () => {
    const got: string[] = [];
    const ac = new AbortController();
    for await (const e of qubes().events({ method: "admin.vm.Stats", reconnectDelay: 10, signal: ac.signal })) {
      got.push(e.event);
      if (got.length === 4) ac.abort();
    }
    expect(got).toEqual(["connection-established", "vm-stats", "connection-established", "vm-stats"]);
  });

  it("decodes vm-stats", async () => {
    const ac = new AbortController();
    for await (const s of qubes().stats({ signal: ac.signal, reconnect: false })) {
      expect(s).toMatchObject({ qube: "work", memoryKb: 409600, cpuTime: 12, cpuUsage: 3, onlineVcpus: 2 });
      ac.abort();
    }
  });

  it("fails cleanly when the socket does not exist", async () => {
    const q = new Qubes({ transport: new UnixSocketTransport({ path: join(dir, "missing.sock") }) });
    const err = await q.list().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QubesTransportError);
    expect((err as QubesTransportError).code).toBe("connect-failed");
  });

  it("takes the socket path from QUBESD_SOCKET", () => {
    const prev = process.env["QUBESD_SOCKET"];
    process.env["QUBESD_SOCKET"] = "/tmp/x.sock";
    try {
      expect(new UnixSocketTransport().path).toBe("/tmp/x.sock");
      expect(new UnixSocketTransport({ path: "/p" }).path).toBe("/p");
    } finally {
      if (prev === undefined) delete process.env["QUBESD_SOCKET"];
      else process.env["QUBESD_SOCKET"] = prev;
    }
  });
});

/** A stand-in for qrexec-client-vm: checks its arguments and stdin, prints a reply or fails. */
const FAKE_QREXEC = `
const [dest, service] = process.argv.slice(-2);
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  if (dest === "refused") { process.stderr.write("Request refused\\n"); process.exit(126); }
  if (service.startsWith("policy.Replace")) {
    process.stderr.write("PolicyAdminTokenException Token mismatch");
    process.exit(1);
  }
  process.stdout.write("0\\0" + dest + " " + service + " " + JSON.stringify(input));
});
`;

describe("command transport", () => {
  const argv = [process.execPath, "-e", FAKE_QREXEC, "{dest}", "{service}"];

  it("runs one process per call with dest, method+arg and the payload on stdin", async () => {
    const q = new Qubes({ transport: new CommandTransport({ argv }) });
    expect(await q.call("admin.vm.feature.Set", "work", "gui", "1")).toBe('work admin.vm.feature.Set+gui "1"');
    expect(await q.call("admin.vm.List", "@adminvm")).toBe('@adminvm admin.vm.List+ ""');
  });

  it("turns a non-zero exit into a typed error with stderr", async () => {
    const q = new Qubes({ transport: new CommandTransport({ argv }) });
    const err = await q.qube("refused").start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QubesServiceCallError);
    expect((err as QubesServiceCallError).exitCode).toBe(126);
    expect((err as QubesServiceCallError).stderr).toBe("Request refused\n");
  });

  it("carries the policy admin api with its typed errors", async () => {
    const p = new PolicyAdmin(new CommandTransport({ argv }));
    const err = await p.replace("30-user", "qubes.Gpg * work vault allow\n", "any").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyAdminTokenException);
    expect((err as Error).message).toBe("Token mismatch");
  });

  it("reports a missing program", async () => {
    const q = new Qubes({ transport: new CommandTransport({ argv: [join(dir, "no-such-program")] }) });
    await expect(q.list()).rejects.toBeInstanceOf(QubesTransportError);
  });
});
