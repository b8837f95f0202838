/**
 * `stackJsonSchema()`: draft 2020-12, generated from the property table. A
 * small validator (the keywords the schema uses, and nothing else: an unknown
 * keyword fails the test) checks that the schema accepts the example stacks
 * of the fixtures and rejects unknown keys, wrong types and keys of another class.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { stackJsonSchema, writableProperties, DECLARABLE_CLASSES } from "@qubes-kit/language";

type S = Record<string, unknown> | boolean;

const KNOWN = new Set([
  "$schema", "title", "description", "examples", "type", "properties", "additionalProperties", "required", "enum", "const", "pattern",
  "anyOf", "allOf", "not", "if", "then", "items", "$ref", "$defs", "minimum", "maximum", "minProperties", "maxProperties", "propertyNames", "maxLength", "default",
]);

/** Validates `v` against `s`; returns the failures (paths). */
function validate(root: Record<string, unknown>, s: S, v: unknown, path = "$"): string[] {
  if (s === true) return [];
  if (s === false) return [`${path}: not allowed`];
  for (const k of Object.keys(s)) if (!KNOWN.has(k)) throw new Error(`validator does not know keyword ${k}`);
  const errs: string[] = [];
  if (typeof s.$ref === "string") {
    const name = s.$ref.replace("#/$defs/", "");
    errs.push(...validate(root, (root.$defs as Record<string, S>)[name]!, v, path));
  }
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    const t = v === null ? "null" : Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v;
    if (!types.includes(t) && !(t === "integer" && types.includes("number"))) return [`${path}: expected ${types.join("|")}, got ${t}`];
  }
  if (s.const !== undefined && v !== s.const) errs.push(`${path}: expected ${JSON.stringify(s.const)}`);
  if (Array.isArray(s.enum) && !s.enum.includes(v)) errs.push(`${path}: not one of ${s.enum.join(", ")}`);
  if (typeof s.pattern === "string" && typeof v === "string" && !new RegExp(s.pattern, "u").test(v)) errs.push(`${path}: does not match ${s.pattern}`);
  if (typeof s.maxLength === "number" && typeof v === "string" && v.length > s.maxLength) errs.push(`${path}: too long`);
  if (typeof s.minimum === "number" && typeof v === "number" && v < s.minimum) errs.push(`${path}: below ${s.minimum}`);
  if (typeof s.maximum === "number" && typeof v === "number" && v > s.maximum) errs.push(`${path}: above ${s.maximum}`);
  if (Array.isArray(s.anyOf) && !s.anyOf.some((x) => validate(root, x as S, v, path).length === 0)) errs.push(`${path}: matches no alternative`);
  if (Array.isArray(s.allOf)) for (const x of s.allOf) errs.push(...validate(root, x as S, v, path));
  if (s.not !== undefined && validate(root, s.not as S, v, path).length === 0) errs.push(`${path}: matches a forbidden shape`);
  if (s.if !== undefined && validate(root, s.if as S, v, path).length === 0 && s.then !== undefined) errs.push(...validate(root, s.then as S, v, path));
  if (Array.isArray(v) && s.items !== undefined) v.forEach((x, i) => errs.push(...validate(root, s.items as S, x, `${path}[${i}]`)));
  if (v !== null && typeof v === "object" && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, S>;
    for (const r of (s.required as string[] | undefined) ?? []) if (!(r in o)) errs.push(`${path}: missing ${r}`);
    const n = Object.keys(o).length;
    if (typeof s.minProperties === "number" && n < s.minProperties) errs.push(`${path}: too few keys`);
    if (typeof s.maxProperties === "number" && n > s.maxProperties) errs.push(`${path}: too many keys`);
    for (const [k, x] of Object.entries(o)) {
      if (s.propertyNames !== undefined) errs.push(...validate(root, s.propertyNames as S, k, `${path}.${k}(key)`));
      if (k in props) errs.push(...validate(root, props[k]!, x, `${path}.${k}`));
      else if (s.additionalProperties !== undefined) errs.push(...validate(root, s.additionalProperties as S, x, `${path}.${k}`));
    }
  }
  return errs;
}

const fixtures = fileURLToPath(new URL("../fixtures/template/check/", import.meta.url));
const load = (rel: string) => parse(readFileSync(fixtures + rel, "utf8")) as Record<string, unknown>;

describe("stackJsonSchema", () => {
  const schema = stackJsonSchema();
  const check = (v: unknown) => validate(schema, schema, v);

  it("is draft 2020-12 and JSON", () => {
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema);
  });

  it("accepts the example stack and its bundle", () => {
    expect(check(load("clean-machine/main.qubes.yaml"))).toEqual([]);
    expect(check(load("clean-machine/bundles/key-holder.qubes.yaml"))).toEqual([]);
  });

  it("has every writable property of every class, with its help text", () => {
    const qube = (schema.$defs as Record<string, { properties: Record<string, { description?: string }> }>).qube;
    for (const c of DECLARABLE_CLASSES)
      for (const p of writableProperties(c)) {
        expect(qube.properties[p.name], p.name).toBeDefined();
        // One entry per name: its text is the help of the first class that has it (AppVM's for template).
        const first = DECLARABLE_CLASSES.map((k) => writableProperties(k).find((x) => x.name === p.name)).find((x) => x !== undefined)!;
        expect(qube.properties[p.name]!.description).toContain(first.help);
      }
  });

  it.each([
    ["an unknown top-level key", { qkit: 1, stack: "s", qubez: {} }, "$.qubez: not allowed"],
    ["an unknown qube key", { qkit: 1, stack: "s", qubes: { w: { class: "AppVM", memroy: 1 } } }, "$.qubes.w.memroy: not allowed"],
    ["a key of another class", { qkit: 1, stack: "s", qubes: { t: { class: "TemplateVM", template: "x" } } }, "$.qubes.t.template: not allowed"],
    ["a wrong type", { qkit: 1, stack: "s", qubes: { w: { class: "AppVM", memory: "lots" } } }, "$.qubes.w.memory: matches no alternative"],
    ["a non-positive vcpus", { qkit: 1, stack: "s", qubes: { w: { class: "AppVM", vcpus: 0 } } }, "$.qubes.w.vcpus: matches no alternative"],
    ["a missing class", { qkit: 1, stack: "s", qubes: { w: { label: "red" } } }, "$.qubes.w: missing class"],
    ["an unknown option", { qkit: 1, stack: "s", options: { prune: true, force: true } }, "$.options.force: not allowed"],
    ["a device with port and match", { qkit: 1, stack: "s", qubes: { w: { class: "AppVM", devices: { pci: [{ port: "00_14.0", match: { class: "network" } }] } } } }, "$.qubes.w.devices.pci[0]: matches a forbidden shape"],
    ["a bad version", { qkit: 2, stack: "s" }, "$.qkit: expected 1"],
    ["an unknown device class", { qkit: 1, stack: "s", qubes: { w: { class: "AppVM", devices: { bogusclass: [] } } } }, "$.qubes.w.devices.bogusclass(key): matches no alternative"],
    ["label: default (the checker's cannot-reset)", { qkit: 1, stack: "s", qubes: { w: { class: "AppVM", label: "default" } } }, "$.qubes.w.label: matches no alternative"],
    ["template: default (the checker's cannot-reset)", { qkit: 1, stack: "s", qubes: { w: { class: "AppVM", template: "default" } } }, "$.qubes.w.template: matches no alternative"],
    ["template: none (not a qube name)", { qkit: 1, stack: "s", qubes: { w: { class: "AppVM", template: "none" } } }, "$.qubes.w.template: matches no alternative"],
  ])("rejects %s", (_what, value, failure) => {
    const errs = check(value);
    expect(errs.join("\n")).toContain(failure);
  });
});
