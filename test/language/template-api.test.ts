/**
 * The template front end through its public surface: the document accessors
 * the LSP needs, the embedded-policy offset map (plain and bundle-expanded),
 * related information, expectations, firewall normalisation, the model.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  checkStack,
  createMemoryFileSystem,
  expectationToObject,
  formatExpectation,
  normalizeFirewallRule,
  parseExpectation,
  parseSize,
  parseStackText,
  policySpanToSource,
  policyBlockAt,
  policyToSource,
  sourceToPolicy,
  DEFAULT,
  propertySpec,
  analyzeTemplate,
  completeTemplate,
  prepareSystemInfo,
  templateDiagnostics,
} from "@qubes-kit/language";

const fixtures = fileURLToPath(new URL("../fixtures/template/check/", import.meta.url));

function stack(files: Record<string, string>, entry = "/s/main.qubes.yaml", system?: Parameters<typeof checkStack>[2]) {
  return checkStack(createMemoryFileSystem(files), entry, system);
}

describe("parseStackText", () => {
  const text = "qkit: 1\nstack: s\nqubes:\n  work:\n    class: AppVM\n    memory: 400\n    tags: [a, b]\n";
  const doc = parseStackText(text, "/s/main.qubes.yaml");

  it("knows the kind of file and has no diagnostics for a clean one", () => {
    expect(doc.kind).toBe("stack");
    expect(doc.diagnostics).toEqual([]);
    expect(parseStackText("qkit: 1\nbundle: b\n", "/b.qubes.yaml").kind).toBe("bundle");
    expect(parseStackText("qkit: 1\nqubes: {}\n", "/f.qubes.yaml").kind).toBe("fragment");
    expect(parseStackText("- 1\n", "/x.qubes.yaml").kind).toBe("invalid");
  });

  it("says a document nested too deeply for the parser, never a crash or an empty stack", () => {
    const deep = "qkit: 1\nstack: s\nqubes:\n" + Array.from({ length: 3000 }, (_, i) => " ".repeat(i + 1) + "k:").join("\n");
    const d = parseStackText(deep, "/s/deep.qubes.yaml");
    expect(d.diagnostics.map((x) => [x.code, x.message])).toContainEqual(["yaml-syntax-error", "the YAML nests too deeply to be read (thousands of levels)"]);
    expect(d.diagnostics.every((x) => !/call stack/.test(x.message))).toBe(true);
  });

  it("gives the key path and node at an offset (keys and values)", () => {
    const onValue = text.indexOf("400") + 1;
    expect(doc.keyPathAt(onValue)).toEqual(["qubes", "work", "memory"]);
    expect(doc.nodeAt(onValue)?.onKey).toBe(false);
    const onKey = text.indexOf("memory") + 2;
    const at = doc.nodeAt(onKey)!;
    expect(at.path).toEqual(["qubes", "work", "memory"]);
    expect(at.onKey).toBe(true);
    expect(doc.keyPathAt(text.indexOf("b]"))).toEqual(["qubes", "work", "tags", 1]);
    expect(doc.nodeAtPath(["qubes", "work", "class"])?.toJSON()).toBe("AppVM");
    expect(doc.nodeAtPath(["qubes", "nope"])).toBeUndefined();
  });

  it("converts offsets to lines and columns", () => {
    expect(doc.positionAt(text.indexOf("work"))).toEqual({ line: 4, column: 2 });
    expect(doc.positionAt(0)).toEqual({ line: 1, column: 0 });
  });

  it("gives the rules blocks of the file as written, with the future path", () => {
    const t = "qkit: 1\nstack: s\noptions: { policy_priority: 30 }\npolicy:\n  - file: a\n    rules: |\n      qubes.X  *  @anyvm  @anyvm  deny\n  - file: b\n    include: true\n    rules: |\n      qubes.Y  *  ${p}  @anyvm  deny\n";
    const d = parseStackText(t, "/s/x.qubes.yaml");
    const blocks = d.policyBlocks();
    expect(blocks.map((b) => [b.path, b.text])).toEqual([
      ["/etc/qubes/policy.d/30-qkit-s-a.policy", "qubes.X  *  @anyvm  @anyvm  deny\n"],
      ["/etc/qubes/policy.d/include/qkit-s-b", "qubes.Y  *  ${p}  @anyvm  deny\n"],
    ]);
    const at = t.indexOf("qubes.Y") + 3;
    const b = policyBlockAt(blocks, "/s/x.qubes.yaml", at)!;
    expect(b.name).toBe("b");
    expect(sourceToPolicy(b, at)).toBe(3);
    expect(policyBlockAt(blocks, "/s/x.qubes.yaml", 0)).toBeUndefined();
  });

  it("reports a second document as an error", () => {
    const d = parseStackText("qkit: 1\n---\nqkit: 1\n", "/m.qubes.yaml");
    expect(d.diagnostics.map((x) => x.code)).toContain("yaml-multiple-documents");
  });
});

describe("embedded policy", () => {
  const main = [
    "qkit: 1",
    "stack: s",
    "use:",
    "  - bundle: b.qubes.yaml",
    "    as: inst",
    "    with: { target: vault }",
    "policy:",
    "  - file: one",
    "    rules: |",
    "      # first",
    "      qubes.Filecopy  *  work  @anyvm  deny",
    "",
    "      qubes.OpenURL  *  work  @anyvm  alow",
    "",
  ].join("\n");
  const bundle = [
    "qkit: 1",
    "bundle: b",
    "params:",
    "  target: { type: qube }",
    "policy:",
    "  - file: two",
    "    rules: |",
    "      qubes.Gpg  *  work  ${target}  allow  bogus=1",
    "",
  ].join("\n");
  const r = stack({ "/s/main.qubes.yaml": main, "/s/b.qubes.yaml": bundle });

  it("gives each rules block as the file it becomes, with its future path", () => {
    const [one, two] = r.policyBlocks;
    expect(one!.path).toBe("/etc/qubes/policy.d/40-qkit-s-one.policy");
    expect(one!.text).toBe("# first\nqubes.Filecopy  *  work  @anyvm  deny\n\nqubes.OpenURL  *  work  @anyvm  alow\n");
    expect(one!.header).toMatch(/^# managed by qkit stack s/);
    expect(two!.path).toBe("/etc/qubes/policy.d/40-qkit-s-inst-two.policy");
    expect(two!.text).toBe("qubes.Gpg  *  work  vault  allow  bogus=1\n");
    expect(two!.use?.as).toBe("inst");
  });

  it("maps every character of a literal block back to the same character in the YAML", () => {
    const one = r.policyBlocks[0]!;
    for (let i = 0; i < one.text.length; i++) {
      if (one.text[i] === "\n") continue;
      const src = policyToSource(one, i);
      expect(main[src]).toBe(one.text[i]);
      expect(sourceToPolicy(one, src)).toBe(i);
    }
  });

  it("puts the policy core's error at the right line and column of the YAML file", () => {
    const d = r.diagnostics.find((x) => x.code === "invalid-action")!;
    expect(d.file).toBe("/s/main.qubes.yaml");
    expect(d.line).toBe(13);
    expect(main.slice(d.span.start, d.span.end)).toBe("alow");
    expect(d.message).toBe("invalid action: alow");
  });

  it("maps a substituted parameter onto ${param} in the bundle, and names the use site", () => {
    const two = r.policyBlocks[1]!;
    const at = two.text.indexOf("vault");
    const m = policySpanToSource(two, { start: at, end: at + 5 });
    expect(bundle.slice(m.span.start, m.span.end)).toBe("${target}");
    expect(m.param).toBe("target");
    // Text after the substitution keeps its exact mapping.
    const after = two.text.indexOf("allow");
    expect(bundle.slice(policyToSource(two, after), policyToSource(two, after) + 5)).toBe("allow");
    const d = r.diagnostics.find((x) => x.file === "/s/b.qubes.yaml" && x.severity === "error")!;
    expect(d).toBeDefined();
    expect(bundle.slice(d.span.start, d.span.end)).toBe("bogus=1");
    expect(d.related?.[0]?.file).toBe("/s/main.qubes.yaml");
    expect(d.related?.[0]?.message).toContain("inst");
  });

  it("points an error on a substituted value at the ${param} and says where the value comes from", () => {
    const b2 = bundle.replace("allow  bogus=1", "allow target=${target}").replace("work  ${target}", "${target}  @anyvm");
    const res = stack({ "/s/main.qubes.yaml": main.replace("with: { target: vault }", 'with: { target: "@anyvm" }'), "/s/b.qubes.yaml": b2 });
    // "@anyvm" is no qube name: the parameter value is refused at the use site.
    const bad = res.diagnostics.find((x) => x.code === "invalid-param-value")!;
    expect(bad.file).toBe("/s/main.qubes.yaml");
  });
});

describe("bundles used twice", () => {
  it("reports a problem of the bundle once, with both use sites", () => {
    const main = "qkit: 1\nstack: s\nuse:\n  - { bundle: b.qubes.yaml, as: one, with: { n: q1 } }\n  - { bundle: b.qubes.yaml, as: two, with: { n: q2 } }\n";
    const b = "qkit: 1\nbundle: b\nparams:\n  n: name\nqubes:\n  ${n}:\n    class: AppVM\n    label: blue\n    memory: lots\n";
    const r = stack({ "/s/main.qubes.yaml": main, "/s/b.qubes.yaml": b });
    const d = r.diagnostics.filter((x) => x.code === "wrong-type");
    expect(d).toHaveLength(1);
    expect(d[0]!.related?.map((x) => x.message)).toEqual(["in bundle instance one (/s/b.qubes.yaml)", "in bundle instance two (/s/b.qubes.yaml)"]);
    expect(r.model).toBeUndefined();
  });

  it("gives typed parameters their type when a value is exactly ${param}", () => {
    const main = "qkit: 1\nstack: s\nuse:\n  - { bundle: b.qubes.yaml, as: one, with: { n: q1, mem: 512, net: false } }\n";
    const b = "qkit: 1\nbundle: b\nparams:\n  n: name\n  mem: int\n  net: { type: bool, default: true }\nqubes:\n  ${n}:\n    class: AppVM\n    label: blue\n    memory: ${mem}\n    provides_network: ${net}\n    notes: ${n} has ${mem} MiB\n";
    const r = stack({ "/s/main.qubes.yaml": main, "/s/b.qubes.yaml": b });
    expect(r.diagnostics).toEqual([]);
    const q = r.model!.qubes[0]!;
    expect(q.name).toBe("q1");
    expect(q.properties).toEqual({ label: "blue", memory: 512, provides_network: false });
    expect(q.notes).toBe("q1 has 512 MiB");
    expect(q.provenance?.bundle?.as).toBe("one");
  });

  it("takes a list<qube> parameter where a list goes, or spliced into one", () => {
    const main = "qkit: 1\nstack: s\nqubes:\n  a: { class: AppVM, label: red }\n  b: { class: AppVM, label: red }\nuse:\n  - { bundle: b.qubes.yaml, as: one, with: { peers: [a, b] } }\n";
    const b = "qkit: 1\nbundle: b\nparams:\n  peers: list<qube>\nexpect:\n  - call: qubes.X a -> b\n    decision: ask\n    targets_include: ${peers}\n  - call: qubes.X a -> b\n    decision: ask\n    targets_exact: [dom0, \"${peers}\"]\n";
    const r = stack({ "/s/main.qubes.yaml": main, "/s/b.qubes.yaml": b });
    expect(r.diagnostics).toEqual([]);
    expect(r.model!.expect.map((e) => [e.targets_include, e.targets_exact])).toEqual([
      [["a", "b"], undefined],
      [undefined, ["dom0", "a", "b"]],
    ]);
  });

  it("checks a bundle opened on its own, leaving parameters without default unchecked", () => {
    const b = "qkit: 1\nbundle: b\nparams:\n  n: name\n  t: { type: qube }\nqubes:\n  ${n}:\n    class: AppVM\n    template: ${t}\n    label: blue\n    memory: -3\n";
    const r = stack({ "/s/b.qubes.yaml": b }, "/s/b.qubes.yaml");
    expect(r.diagnostics.map((d) => d.code)).toEqual(["invalid-property-value"]);
  });
});

describe("the model", () => {
  it("canonicalises values as qubesd stores them", () => {
    const r = stack({
      "/s/main.qubes.yaml": [
        "qkit: 1",
        "stack: s",
        "qubes:",
        "  w:",
        "    class: AppVM",
        "    label: blue",
        "    netvm: none",
        "    kernel: default",
        "    kernelopts: none",
        "    stubdom_mem: none",
        "    memory: 2GiB",
        "    virt_mode: HVM",
        "    features: { a: true, b: false, c: 10, d: null, e: text }",
        "    services: { cups: true }",
        "    tags: [z, a]",
        "    firewall: [ 'proto=tcp action=accept dstports=443 dsthost=10.1.2.3' ]",
        "",
      ].join("\n"),
    });
    expect(r.diagnostics).toEqual([]);
    const q = r.model!.qubes[0]!;
    expect(q.properties).toEqual({ label: "blue", netvm: null, kernel: DEFAULT, kernelopts: "none", stubdom_mem: null, memory: 2048, virt_mode: "hvm" });
    expect(q.features).toEqual({ a: "1", b: "", c: "10", d: null, e: "text", "service.cups": "1" });
    expect(q.tags).toEqual(["a", "z"]);
    expect(q.firewall).toEqual(["action=accept dst4=10.1.2.3/32 proto=tcp dstports=443-443"]);
    expect(q.keyProvenance?.memory?.file).toBe("/s/main.qubes.yaml");
  });

  it("keeps every digit of an integer feature value beyond 2^53 (the source text, not a double)", () => {
    const r = stack({ "/s/main.qubes.yaml": "qkit: 1\nstack: s\nqubes:\n  w:\n    class: AppVM\n    label: blue\n    features: { big: 12345678901234567890, neg: -9007199254740993, hex: 0x20000000000001, safe: 9007199254740991 }\n" });
    // only the hexadecimal literal changes its digits (a warning: quote it to keep the text)
    expect(r.diagnostics.map((d) => [d.code, d.severity])).toEqual([["yaml-number-converted", "warning"]]);
    expect(r.model!.qubes[0]!.features).toEqual({ big: "12345678901234567890", neg: "-9007199254740993", hex: "9007199254740993", safe: "9007199254740991" });
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }), (n) => {
        const text = `qkit: 1\nstack: s\nqubes:\n  w:\n    class: AppVM\n    label: blue\n    features: { n: ${n} }\n    memory: ${n}\n`;
        const got = stack({ "/s/main.qubes.yaml": text });
        const safe = n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER);
        const codes = got.diagnostics.map((d) => d.code);
        if (safe) expect(codes).not.toContain("unsafe-integer");
        else {
          // memory is refused with its own code; the feature value is kept digit for digit
          expect(codes).toEqual(["unsafe-integer"]);
          expect(got.diagnostics[0]!.message).toBe(`memory is too large to keep exactly: ${n} (the limit is ±9007199254740991)`);
        }
        const again = stack({ "/s/main.qubes.yaml": text.replace(/    memory: .*\n/, "") });
        expect(again.model!.qubes[0]!.features.n).toBe(n.toString());
      }),
      { numRuns: 60 },
    );
  });

  it("stores ip and ip6 as Python's ipaddress prints them, and refuses what it cannot parse", () => {
    const r = stack({ "/s/main.qubes.yaml": 'qkit: 1\nstack: s\nqubes:\n  w:\n    class: AppVM\n    label: blue\n    ip: 10.137.0.9\n    ip6: "FD09:24EF:4179:0000::A89:1"\n' });
    expect(r.diagnostics).toEqual([]);
    expect(r.model!.qubes[0]!.properties).toMatchObject({ ip: "10.137.0.9", ip6: "fd09:24ef:4179::a89:1" });
    for (const [key, value, type] of [["ip", "10.0.0.300", "IPv4Address"], ["ip", "010.0.0.1", "IPv4Address"], ["ip6", "zz::1", "IPv6Address"], ["ip6", "1:2:3:4:5:6:7::8:9", "IPv6Address"], ["ip6", "fe80::1%", "IPv6Address"]] as const) {
      const bad = stack({ "/s/main.qubes.yaml": `qkit: 1\nstack: s\nqubes:\n  w:\n    class: AppVM\n    label: blue\n    ${key}: "${value}"\n` });
      expect(bad.diagnostics.map((d) => [d.code, d.message])).toEqual([["invalid-property-value", `Failed to parse property value as ${type} (QubesPropertyValueError)`]]);
    }
  });

  it("reports qubesd's own refusal of a value, from the shared property table", () => {
    for (const [key, value] of [["keyboard_layout", "de"], ["devices_denied", "u0e****x"], ["mac", "00:16:3e:5e:6c"]] as const) {
      const r = stack({ "/s/main.qubes.yaml": `qkit: 1\nstack: s\nqubes:\n  w:\n    class: AppVM\n    label: blue\n    ${key}: "${value}"\n` });
      const refusal = propertySpec("AppVM", key)!.check!(value);
      expect(refusal.ok).toBe(false);
      if (refusal.ok) continue;
      expect(r.diagnostics.map((d) => [d.code, d.message, d.line])).toEqual([["invalid-property-value", `${refusal.message} (${refusal.error})`, 7]]);
    }
  });

  it("is undefined exactly when there is an error (infos and warnings keep it)", () => {
    const ok = stack({ "/s/main.qubes.yaml": "qkit: 1\nstack: s\nqubes:\n  w:\n    class: AppVM\n    label: blue\n    template: elsewhere\n" });
    expect(ok.diagnostics.map((d) => d.severity)).toEqual(["info"]);
    expect(ok.model?.stack).toBe("s");
    const bad = stack({ "/s/main.qubes.yaml": "qkit: 1\nstack: s\nqubes:\n  w:\n    class: AppVM\n    label: blue\n    vcpus: 0\n" });
    expect(bad.model).toBeUndefined();
  });

  it("turns a system's presence into errors for unknown references", () => {
    const files = { "/s/main.qubes.yaml": "qkit: 1\nstack: s\nqubes:\n  w:\n    class: AppVM\n    label: blue\n    template: elsewhere\n" };
    const r = stack(files, "/s/main.qubes.yaml", { system: { qubes: { w: { class: "AppVM" } } } });
    expect(r.diagnostics.map((d) => `${d.severity} ${d.code}`)).toEqual(["error unknown-qube"]);
    const ok = stack(files, "/s/main.qubes.yaml", { system: { qubes: { w: { class: "AppVM" }, elsewhere: { class: "TemplateVM" } } } });
    expect(ok.diagnostics).toEqual([]);
  });

  it("reads the whole clean example machine", () => {
    const base = `${fixtures}clean-machine/`;
    const fs = { readFile: (p: string) => { try { return readFileSync(base + p.slice("/m/".length), "utf8"); } catch { return undefined; } } };
    const r = checkStack(fs, "/m/main.qubes.yaml");
    expect(r.diagnostics).toEqual([]);
    expect(r.model!.qubes.map((q) => q.name)).toContain("key-vault");
    expect([...r.documents.keys()].sort()).toEqual(["/m/bundles/key-holder.qubes.yaml", "/m/main.qubes.yaml"]);
    expect(r.model!.policy.map((p) => p.file)).toEqual(["desk", "keys-gpg"]);
    expect(r.model!.policy[0]!.rulesOffset).toEqual({ line: 85, indent: 6 });
  });

  it("accepts the benchmark's generated stack (so bench/template.mjs measures a clean check)", async () => {
    const { generateStack } = await import("../../bench/template.mjs");
    const { main, bundle } = generateStack(80);
    const r = stack({ "/b/main.qubes.yaml": main, "/b/vault.qubes.yaml": bundle }, "/b/main.qubes.yaml");
    expect(r.diagnostics).toEqual([]);
    expect(r.model!.qubes).toHaveLength(80);
  });

  it("reports an unreadable entry file and never throws on a throwing file system", () => {
    const r = checkStack({ readFile: () => { throw new Error("boom"); } }, "/nope.qubes.yaml");
    expect(r.diagnostics.map((d) => d.code)).toEqual(["file-not-found"]);
  });
});

describe("expectations", () => {
  it("reads both forms", () => {
    expect(parseExpectation("qubes.Gpg2 work @default => ask vault-gpg")).toEqual({
      ok: true,
      expectation: { service: "qubes.Gpg2", argument: "", source: "work", target: "@default", decision: "ask", target_is: "vault-gpg" },
    });
    expect(parseExpectation({ call: "qubes.Filecopy+x work -> vault", decision: "deny" })).toEqual({
      ok: true,
      expectation: { service: "qubes.Filecopy", argument: "+x", source: "work", target: "vault", decision: "deny" },
    });
    expect(parseExpectation("qubes.OpenInVM work @dispvm => allow @dispvm:dvm")).toMatchObject({ ok: true, expectation: { target_is: "@dispvm:dvm" } });
  });

  it("says what is wrong and where", () => {
    const r = parseExpectation("qubes.Gpg2 work @default => maybe");
    expect(r).toEqual({ ok: false, message: "invalid decision: maybe (allow, ask or deny)", span: { start: 28, end: 33 } });
    expect(parseExpectation({ call: "qubes.Gpg2 work -> vault", decision: "deny", target: "vault" })).toMatchObject({ ok: false, key: "target" });
    expect(parseExpectation("a b -> -> c => deny")).toMatchObject({ ok: false, message: "more than one -> in the call" });
  });

  it("round-trips through the string and mapping forms", () => {
    for (const s of ["qubes.Gpg2 work -> @default => ask vault-gpg", "qubes.Filecopy+arg work -> vault => deny", "qubes.OpenInVM work -> @dispvm => allow @dispvm:dvm-work"]) {
      const r = parseExpectation(s);
      expect(r.ok).toBe(true);
      if (!r.ok) continue;
      expect(formatExpectation(r.expectation)).toBe(s);
      expect(parseExpectation(expectationToObject(r.expectation))).toEqual(r);
    }
  });
});

describe("firewall rules", () => {
  it.each([
    ["action=accept dsthost=example.org proto=tcp dstports=443", "action=accept dsthost=example.org proto=tcp dstports=443-443"],
    ["proto=udp action=accept dst4=10.0.0.1 dstports=53-53", "action=accept dst4=10.0.0.1/32 proto=udp dstports=53-53"],
    ["action=accept proto=tcp specialtarget=dns dstports=53", "action=accept proto=tcp specialtarget=dns dstports=53-53"],
    ["action=accept dsthost=2001:DB8::1", "action=accept dst6=2001:DB8::1/128"],
    ["action=accept dstname=10.0.0.0/8", "action=accept dst4=10.0.0.0/8"],
    ["expire=1700000000 proto=tcp dstports=22 dsthost=a.b action=accept comment=keep  me", "action=accept expire=1700000000 dsthost=a.b proto=tcp dstports=22-22 comment=keep  me"],
    ["action=drop comment=no  more  traffic ", "action=drop comment=no  more  traffic"],
    ["action=accept specialtarget=dns", "action=accept specialtarget=dns"],
    ["action=accept proto=icmp icmptype=08", "action=accept proto=icmp icmptype=8"],
  ])("%s", (input, canonical) => {
    expect(normalizeFirewallRule(input)).toEqual({ ok: true, rule: canonical });
    expect(normalizeFirewallRule(canonical)).toEqual({ ok: true, rule: canonical });
  });

  it("says that dst4 holds an IPv4 address (qubesd would quietly take a name as dsthost)", () => {
    expect(normalizeFirewallRule("action=accept dst4=example.org")).toMatchObject({ ok: false, message: "dst4 must be an IPv4 address or network: example.org" });
  });

  it("warns about a rule whose expire= is past at the check's time, and keeps it (qubesd keeps it, unapplied)", () => {
    const text = "qkit: 1\nstack: s\nqubes:\n  w:\n    class: AppVM\n    label: blue\n    firewall:\n      - action=accept dsthost=a.b expire=1700000000\n      - action=drop\n";
    const at = (now: number) => stack({ "/s/main.qubes.yaml": text }, "/s/main.qubes.yaml", { now });
    expect(at(1699999999).diagnostics).toEqual([]);
    const late = at(1700000000);
    expect(late.diagnostics.map((d) => [d.code, d.severity, d.message, text.slice(d.span.start, d.span.end)])).toEqual([
      ["firewall-rule-expired", "warning", "this firewall rule expired on 2023-11-14 22:13:20 UTC (expire=1700000000): qubesd will not apply it", "expire=1700000000"],
    ]);
    expect(late.model!.qubes[0]!.firewall).toEqual(["action=accept expire=1700000000 dsthost=a.b", "action=drop"]);
  });

  it("points at the offending option", () => {
    const text = "action=accept proto=tcp dstports=99999";
    const r = normalizeFirewallRule(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(text.slice(r.start, r.end)).toBe("dstports=99999");
  });
});

describe("sizes", () => {
  it.each([
    ["4GiB", 4 * 2 ** 30],
    ["512MiB", 512 * 2 ** 20],
    ["20GB", 20e9],
    ["1024", 1024],
    ["1.5GiB", 1.5 * 2 ** 30],
    ["4 G", undefined],
    ["-1GiB", undefined],
    ["lots", undefined],
  ])("%s", (text, bytes) => expect(parseSize(text)).toBe(bytes));
});

describe("an explicit null where a mapping or list goes", () => {
  it.each([
    ["qubes: null", "qubes must be a mapping, not null"],
    ["qubes: ~", "qubes must be a mapping, not null"],
    ['{"qkit": 1, "stack": "s", "qubes": null}', "qubes must be a mapping, not null"],
    ["qubes:\n  w:\n    class: AppVM\n    label: blue\n    tags: null", "tags must be a list, not null"],
  ])("%s is wrong-type", (text, message) => {
    const r = stack({ "/s/main.qubes.yaml": text.startsWith("{") ? text : `qkit: 1\nstack: s\n${text}\n` });
    expect(r.diagnostics.map((d) => [d.code, d.message])).toEqual([["wrong-type", message]]);
    expect(r.model).toBeUndefined();
  });

  it("an empty value (`qubes:` with nothing after it) stays an empty mapping", () => {
    const r = stack({ "/s/main.qubes.yaml": "qkit: 1\nstack: s\nqubes:\npolicy:\n" });
    expect(r.diagnostics).toEqual([]);
    expect(r.model?.qubes).toEqual([]);
  });
});

describe("help of unknown keys", () => {
  it("lists the keys of a qube (moved_from, a rename, among them), and never sends a stack key to qvm-prefs", () => {
    const r = stack({ "/s/main.qubes.yaml": "qkit: 1\nstack: s\nglobal:\n  zzzzzzzzzz: 1\nqubes:\n  w:\n    class: AppVM\n    label: blue\n    moved_from: old\n    qqqqqqqqqq: 1\n" });
    expect(r.diagnostics.map((d) => [d.message, d.help])).toEqual([
      ["unknown global property: zzzzzzzzzz", "global properties are those of `qubes-prefs` (listed by `qkit template schema`)"],
      ["unknown key in qube w: qqqqqqqqqq", "a qube's keys are class, source, moved_from, features, services, tags, firewall, devices, volumes, pools, notes, state, absent, protect, ignore_changes and the properties of its class (listed by `qkit template schema`)"],
    ]);
    expect(stack({ "/s/main.qubes.yaml": "qkit: 1\nstack: s\nqubes:\n  w:\n    class: AppVM\n    label: blue\n    moved_from: old\n" }).model?.qubes[0]?.moved_from).toBe("old");
  });
});

describe("files a stack reads", () => {
  it("reads only *.qubes.yaml files through include: and use: (never ../../../etc/passwd)", () => {
    const asked: string[] = [];
    const fs = { readFile: (p: string) => (asked.push(p), p === "/etc/passwd" ? "root:x:0:0::/root:/bin/sh\n" : p === "/s/a/main.qubes.yaml" ? "qkit: 1\nstack: s\ninclude: [../../../etc/passwd]\nuse:\n  - bundle: ../../../etc/passwd\n    as: pw\n" : undefined) };
    const r = checkStack(fs, "/s/a/main.qubes.yaml");
    expect(asked).toEqual(["/s/a/main.qubes.yaml"]);
    expect(r.diagnostics.map((d) => d.code)).toEqual(["invalid-include", "invalid-bundle-path"]);
  });
});

describe("installed kernels in the editor", () => {
  const system = prepareSystemInfo({ domains: { dom0: { type: "AdminVM", tags: [] }, "sys-net": { type: "AppVM", tags: [] } } });
  const text = "qkit: 1\nstack: s\nglobal:\n  default_kernel: 6.1.0\nqubes:\n  w:\n    class: AppVM\n    label: blue\n    kernel: 5.0\n";
  it("offers the installed kernels for kernel: and default_kernel:, with none and default", () => {
    const a = analyzeTemplate("/s/main.qubes.yaml", text, { system, kernels: ["6.1.0", "6.6.9"] });
    const at = (needle: string) => completeTemplate(a, text.indexOf(needle) + needle.length).map((i) => i.label);
    expect(at("    kernel: ")).toEqual(expect.arrayContaining(["6.1.0", "6.6.9", "none", "default"]));
    expect(at("  default_kernel: ")).toEqual(expect.arrayContaining(["6.1.0", "6.6.9", "none"]));
    // and the editor's diagnostics refuse the one that is not installed, in qubesd's words
    expect(templateDiagnostics(a).map((d) => [d.code, d.message])).toEqual([["unknown-kernel", "Kernel '5.0' not installed (QubesPropertyValueError)"]]);
  });

  it("without known kernels offers only none and default, and checks nothing", () => {
    const a = analyzeTemplate("/s/main.qubes.yaml", text, { system });
    expect(completeTemplate(a, text.indexOf("    kernel: ") + 12).map((i) => i.label).sort()).toEqual(["default", "none"]);
    expect(templateDiagnostics(a).filter((d) => d.code === "unknown-kernel")).toEqual([]);
  });
});
