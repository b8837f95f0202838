/**
 * The pure parts of the client: validation rules, value encodings, firewall
 * and device serialisations, the error table, the event decoder and reply
 * parsing of malformed input.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  EventDecoder,
  QubesDaemonCommunicationError,
  QubesEmptyReplyError,
  QubesException,
  QubesUnknownError,
  QubesVMError,
  QubesVMNotRunningError,
  QubesVMNotStartedError,
  ProtocolError,
  QubesInvalidTagError,
  QubesValidationError,
  WIRE_ERROR_CLASSES,
  calls,
  classifyHost,
  deviceArg,
  encodePropertyValue,
  encodeRequest,
  errorFromWire,
  formatFirewallRule,
  parseDeviceAssignmentLine,
  parseDeviceInfoLine,
  parseFirewallRule,
  parsePropertyAll,
  parsePropertyValue,
  parseReply,
  policyToken,
  replyText,
  serializeAssignment,
  validateDest,
  validateQubeName,
  type FirewallRule,
} from "@qubes-kit/sdk";

const FIX = join(__dirname, "..", "fixtures", "admin-api");
/** The fixture whose file name starts with `prefix` (e.g. `139-`). */
const fixture = (dir: string, prefix: string) => {
  const file = readdirSync(join(FIX, dir)).find((f) => f.startsWith(prefix));
  if (!file) throw new Error(`no fixture ${prefix} in ${dir}`);
  return JSON.parse(readFileSync(join(FIX, dir, file), "utf8"));
};

describe("validation", () => {
  const names: [string, boolean][] = [
    ["work", true],
    ["sys-net", true],
    ["a.b_c-d", true],
    ["x".repeat(31), true],
    ["x".repeat(32), false],
    ["0bad", false],
    ["-bad", false],
    ["", false],
    ["with space", false],
    ["none", false],
    ["default", false],
    ["Domain-0", false],
    ["foo-dm", false],
    ["caf\u00e9", false],
  ];
  for (const [name, ok] of names) {
    it(`qube name ${JSON.stringify(name)} is ${ok ? "valid" : "refused"}`, () => {
      if (ok) expect(validateQubeName(name)).toBe(name);
      else expect(() => validateQubeName(name)).toThrow(QubesValidationError);
    });
  }

  const dests: [string, boolean][] = [
    ["dom0", true],
    ["@adminvm", true],
    ["uuid:00000000-0000-0000-0000-000000000000", true],
    ["uuid:1234", false],
    ["uuid:F7C1BD87-4DA5-4709-9471-3D60C8A70639", false],
    ["@dispvm", false],
    ["a b", false],
  ];
  for (const [dest, ok] of dests) {
    it(`destination ${dest} is ${ok ? "valid" : "refused"}`, () => {
      if (ok) expect(validateDest(dest)).toBe(dest);
      else expect(() => validateDest(dest)).toThrow(QubesValidationError);
    });
  }

  it("refuses characters qrexec would rewrite, with a code", () => {
    const err = (() => {
      try {
        calls.featureGet("work", "a/b");
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(QubesValidationError);
    expect((err as QubesValidationError).code).toBe("invalid-feature-name");
    expect(() => calls.tagSet("work", "a.b")).toThrow(/disallowed characters/);
    expect(() => calls.labelCreate("12", "0x123456")).toThrow(/all digits/);
    expect(() => calls.volumeResize("work", "private", -1)).toThrow(QubesValidationError);
    expect(() => calls.notesSet("work", "x".repeat(256001))).toThrow(/256000/);
  });
});

describe("property values", () => {
  it("parses each type and the empty value", () => {
    expect(parsePropertyValue("default=True type=vm ")).toEqual({ isDefault: true, type: "vm", value: null, raw: "" });
    expect(parsePropertyValue("default=True type=int ")).toEqual({ isDefault: true, type: "int", value: undefined, raw: "" });
    expect(parsePropertyValue("default=False type=bool True").value).toBe(true);
    expect(parsePropertyValue("default=False type=str a b\nc").value).toBe("a b\nc");
    expect(parsePropertyValue("default=False type=label blue").value).toBe("blue");
    expect(() => parsePropertyValue("nonsense")).toThrow(QubesDaemonCommunicationError);
  });

  it("unescapes GetAll values and keeps the server's order", () => {
    const all = parsePropertyAll("b default=False type=str x\\ny\\\\z\na default=True type=int 3\n");
    expect([...all.keys()]).toEqual(["b", "a"]);
    expect(all.get("b")!.value).toBe("x\ny\\z");
  });

  it("encodes values for Set", () => {
    expect(encodePropertyValue("p", true)).toBe("True");
    expect(encodePropertyValue("p", 400)).toBe("400");
    expect(encodePropertyValue("p", null)).toBe("");
    expect(encodePropertyValue("p", { name: "sys-net" })).toBe("sys-net");
    expect(() => encodePropertyValue("memory", true, "int")).toThrow(QubesValidationError);
    expect(() => encodePropertyValue("p", 1.5)).toThrow(QubesValidationError);
    expect(() => encodePropertyValue("p", "caf\u00e9")).toThrow(/ascii/);
  });
});

describe("firewall", () => {
  it("prints typed rules exactly as qubesadmin sends them (fixture 139)", () => {
    const fx = fixture("qubesd", "139-");
    const payload = Buffer.from(fx.request.payload_b64, "base64").toString("utf8");
    const rules: FirewallRule[] = [
      { action: "accept", proto: "tcp", dsthost: "qubes-os.org", dstports: 443 },
      { action: "accept", specialtarget: "dns" },
      { action: "accept", proto: "icmp", icmptype: 8 },
      { action: "accept", dsthost: "192.168.0.0/16", comment: "LAN access, printers" },
      { action: "drop" },
    ];
    expect(rules.map((r) => formatFirewallRule(r, { order: "set" }) + "\n").join("")).toBe(payload);
  });

  it("reads Get replies and prints them back in qubesd's normalised form (fixtures 140, 143)", () => {
    for (const f of ["140-", "143-"]) {
      const text: string = fixture("qubesd", f).response.parsed.text;
      const lines = text.split("\n").filter(Boolean);
      expect(lines.map((l) => formatFirewallRule(parseFirewallRule(l)))).toEqual(lines);
    }
  });

  it("normalises hosts", () => {
    expect(classifyHost("1.1.1.1")).toEqual({ key: "dst4", value: "1.1.1.1/32" });
    expect(classifyHost("2001:db8::1")).toEqual({ key: "dst6", value: "2001:db8::1/128" });
    expect(classifyHost("qubes-os.org")).toEqual({ key: "dsthost", value: "qubes-os.org" });
    expect(() => classifyHost("Qubes-OS.org")).toThrow(QubesValidationError);
    expect(() => formatFirewallRule({ action: "accept", dstports: 80 })).toThrow(/tcp or udp/);
    expect(() => formatFirewallRule({ action: "accept", comment: "a\nb" })).toThrow(QubesValidationError);
  });
});

describe("devices", () => {
  it("round-trips the assignment of fixture 149", () => {
    const fx = fixture("qubesd", "149-");
    const payload = Buffer.from(fx.request.payload_b64, "base64").toString("utf8");
    const a = parseDeviceAssignmentLine(`dom0+00_1c.0-00_00.0:0x8086:0x2723::p028000 ${payload}`);
    expect(a).toEqual({
      backendDomain: "dom0",
      portId: "00_1c.0-00_00.0",
      deviceId: "0x8086:0x2723::p028000",
      devclass: "pci",
      mode: "required",
      frontendDomain: "sys-net",
      options: { "no-strict-reset": "True" },
    });
    expect(serializeAssignment(a)).toBe(payload);
    expect(deviceArg(a)).toBe(fx.request.arg);
  });

  it("maps * and ? to _ in device arguments", () => {
    expect(deviceArg({ backendDomain: "sys-usb", portId: "2-1", deviceId: "*" })).toBe("sys-usb+2-1+_");
    expect(deviceArg({ backendDomain: "dom0", portId: "sda", deviceId: "0x1:0x2::?******" })).toBe("dom0+sda+0x1+0x2++_______");
  });

  it("parses exposed devices with quotes and data keys", () => {
    const d = parseDeviceInfoLine("sda:0x1:0x2 device_id='0x1:0x2' port_id='sda' devclass='block' backend_domain='dom0' product='Bob\\'s disk' interfaces='b000000u080650' _size='1024'");
    expect(d.product).toBe("Bob's disk");
    expect(d.interfaces).toEqual(["b000000", "u080650"]);
    expect(d.data).toEqual({ size: "1024" });
    expect(serializeAssignment({ backendDomain: "dom0", portId: "sda", deviceId: "*", devclass: "block", mode: "auto-attach", options: { label: "it's" } })).toContain("_label='it\\'s'");
  });
});

describe("errors", () => {
  it("maps every known wire name to its own class, keeping name and message", () => {
    for (const [name, cls] of Object.entries(WIRE_ERROR_CLASSES)) {
      const e = errorFromWire(name, `message of ${name} with 100% literal %s`);
      expect(e).toBeInstanceOf(cls);
      expect(e).toBeInstanceOf(QubesException);
      expect(e.constructor.name).toBe(name);
      expect(e.qubesType).toBe(name);
      expect(e.message).toBe(`message of ${name} with 100% literal %s`);
      expect(e.code).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
    }
  });

  it("mirrors the server's hierarchy", () => {
    expect(errorFromWire("QubesVMNotRunningError", "x")).toBeInstanceOf(QubesVMNotStartedError);
    expect(errorFromWire("QubesVMNotRunningError", "x")).toBeInstanceOf(QubesVMError);
    expect(errorFromWire("QubesInvalidTagError", "x")).toBeInstanceOf(ProtocolError);
    expect(errorFromWire("QubesVMNotRunningError", "x")).toBeInstanceOf(QubesVMNotRunningError);
  });

  it("keeps unknown names in a generic class", () => {
    const e = errorFromWire("QubesBrandNewError", "new");
    expect(e).toBeInstanceOf(QubesUnknownError);
    expect(e.qubesType).toBe("QubesBrandNewError");
    expect(errorFromWire("__proto__", "x")).toBeInstanceOf(QubesUnknownError);
  });

  it("parses the tag error of fixture 092 from its bytes", () => {
    const fx = fixture("qubesd", "092-");
    expect(() => replyText(new Uint8Array(Buffer.from(fx.response.raw_b64, "base64")))).toThrow(QubesInvalidTagError);
  });
});

describe("reply and event framing", () => {
  const enc = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));

  it("turns every malformed reply into a typed error", () => {
    expect(() => parseReply(enc(""))).toThrow(QubesEmptyReplyError);
    expect(() => parseReply(enc("0"))).toThrow(QubesDaemonCommunicationError);
    expect(() => parseReply(enc("3\0x"))).toThrow(QubesDaemonCommunicationError);
    expect(() => parseReply(enc("2\0OnlyType\0"))).toThrow(QubesDaemonCommunicationError);
    expect(() => parseReply(enc("1\0\0connection-established\0\0"))).toThrow(QubesDaemonCommunicationError);
    expect(() => replyText(enc("0\0\xff\xfe"))).toThrow(/utf-8/);
    expect(replyText(enc("0\0"))).toBe("");
  });

  it("decodes events split at every byte boundary", () => {
    const stream = "1\0\0connection-established\0\0" + "1\0work\0property-set:netvm\0name\0netvm\0newvalue\0sys-net\0oldvalue\0\0\0" + "1\0\0domain-add\0vm\0x\0\0";
    const bytes = enc(stream);
    for (const step of [1, 2, 3, 7, 1000]) {
      const d = new EventDecoder();
      const events = [];
      for (let i = 0; i < bytes.length; i += step) events.push(...d.push(bytes.subarray(i, i + step)));
      d.finish();
      expect(events).toEqual([
        { subject: null, event: "connection-established", kwargs: {} },
        { subject: "work", event: "property-set:netvm", kwargs: { name: "netvm", newvalue: "sys-net", oldvalue: "" } },
        { subject: null, event: "domain-add", kwargs: { vm: "x" } },
      ]);
    }
  });

  it("reports a stream that is an exception, empty, or cut short", () => {
    const d1 = new EventDecoder();
    d1.push(enc("2\0PermissionDenied\0\0denied\0"));
    expect(() => d1.finish()).toThrow(/denied/);
    expect(() => new EventDecoder().finish()).toThrow(QubesEmptyReplyError);
    const d3 = new EventDecoder();
    d3.push(enc("1\0\0connection-established\0\0" + "1\0work\0dom"));
    expect(() => d3.finish()).toThrow(/middle of a frame/);
    expect(() => new EventDecoder().push(enc("x\0"))).toThrow(QubesDaemonCommunicationError);
  });

  it("frames requests with a trailing + and checks the size before sending", () => {
    const r = encodeRequest({ method: "admin.vm.List", arg: "", source: "dom0", destType: "keyword", dest: "adminvm", payload: new Uint8Array() });
    expect(Buffer.from(r).toString("latin1")).toBe("admin.vm.List+ dom0 keyword adminvm\0");
    expect(() => encodeRequest({ method: "m", arg: "", source: "dom0", destType: "name", dest: "d", payload: new Uint8Array(65536) })).toThrow(/65536/);
  });
});

describe("policy tokens", () => {
  it("computes the server's token (fixture 003)", () => {
    const fx = fixture("policy-admin", "003-");
    const out = Buffer.from(fx.response.stdout_b64, "base64").toString("utf8");
    const nl = out.indexOf("\n");
    expect(policyToken(out.slice(nl + 1))).toBe(out.slice(0, nl));
  });
});

describe("malformed answers", () => {
  /** One parser per reply format, from the call descriptions. */
  const parsers: [string, (t: string) => unknown][] = [
    ["vmList", calls.vmList().parse],
    ["propertyGet", calls.propertyGet("netvm", "work").parse],
    ["propertyGetAll", calls.propertyGetAll("work").parse],
    ["propertyGetDefault", calls.propertyGetDefault("netvm", "work").parse],
    ["labelIndex", calls.labelIndex("red").parse],
    ["tagGet", calls.tagGet("work", "t").parse],
    ["currentState", calls.currentState("work").parse],
    ["volumeInfo", calls.volumeInfo("work", "private").parse],
    ["poolUsageDetails", calls.poolUsageDetails("p").parse],
    ["poolInfo", calls.poolInfo("p").parse],
    ["poolListDrivers", calls.poolListDrivers().parse],
    ["firewallGet", calls.firewallGet("work").parse],
    ["deviceAvailable", calls.deviceAvailable("dom0", "pci").parse],
    ["deviceAssigned", calls.deviceAssigned("work", "pci").parse],
    ["propertySet", calls.propertySet("memory", "1", "work").parse],
  ];
  const text = fc.oneof(
    fc.string(),
    fc.stringMatching(/^(default=(True|False) type=(str|int|bool|vm|label|x) ?.*|[a-z_]+=[^\n]*\n?|[a-z]+ class=\w+ state=\w+.*|action=\w+.*|\w+:\S+ (\w+='[^']*' ?)*)$/),
  );

  it("every parser either returns a value or throws a typed error", () => {
    fc.assert(
      fc.property(text, (t) => {
        for (const [, parse] of parsers) {
          try {
            parse(t);
          } catch (err) {
            if (!(err instanceof QubesException)) throw new Error(`untyped error for ${JSON.stringify(t)}: ${String(err)}`);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("reply and event decoding never throw untyped errors on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 1, max: 50 }), (bytes, step) => {
        try {
          replyText(bytes);
        } catch (err) {
          if (!(err instanceof QubesException)) throw err;
        }
        const d = new EventDecoder();
        try {
          for (let i = 0; i < bytes.length; i += step) d.push(bytes.subarray(i, i + step));
          d.finish();
        } catch (err) {
          if (!(err instanceof QubesException)) throw err;
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("keeps a __proto__ key as data", () => {
    const d = new EventDecoder();
    const [e] = d.push(new Uint8Array(Buffer.from("1\0work\0x\0__proto__\0v\0\0", "latin1")));
    expect(Object.getOwnPropertyDescriptor(e!.kwargs, "__proto__")?.value).toBe("v");
    expect(Object.getPrototypeOf(e!.kwargs)).toBe(Object.prototype);
  });
});
