/**
 * Property methods: `admin.property.*` and `admin.vm.property.*`.
 */
import { propertyHelp } from "@qubes-kit/language";
import type { PropDef, PropValue, Holder } from "../model.js";
import { parsePyBool, parsePyInt, validateName } from "../model.js";
import { SimAbort, isAscii, qerr } from "../wire.js";
import { parseIPv4, parseIPv6, parseUuid } from "@qubes-kit/language";
import { lines, method, type CallContext } from "./registry.js";

// ---------------------------------------------------------------------------
// Properties

function serializeProperty(h: Holder, d: PropDef<Holder>): string {
  const v = h.getProp(d.name);
  if (v === undefined) return `default=True type=${d.type} `;
  return `default=${h.isDefault(d.name) || !!d.stateless ? "True" : "False"} type=${d.type} ${v === null ? "" : pyValueStr(v)}`;
}

function pyValueStr(v: PropValue): string {
  if (typeof v === "boolean") return v ? "True" : "False";
  return String(v);
}

function propDef(h: Holder, name: string): PropDef<Holder> {
  const d = h.def(name) as PropDef<Holder> | undefined;
  if (!d) throw qerr("QubesNoSuchPropertyError", `Invalid property '${name}' of ${h.describe()}`);
  return d;
}

/** `property.sanitize(untrusted_newvalue=...)`. */
function sanitize(d: PropDef<Holder>, payload: Buffer): PropValue {
  if (!isAscii(payload)) throw qerr("QubesValueError", "Non-ASCII bytes in property value");
  const s = payload.toString("latin1");
  if (d.type === "vm") {
    if (s === "") return "";
    validateName(s);
    return s;
  }
  if (d.pyType === "bool" || (d.type === "bool" && !d.pyType)) return parsePyBool(s);
  if (d.pyType === "int" || (d.type === "int" && !d.pyType)) {
    const n = parsePyInt(s);
    if (n === undefined) throw qerr("QubesValueError", "Failed to parse property value as int");
    return n;
  }
  const typed: Record<string, [(s: string) => string | undefined, string]> = {
    ipv4: [parseIPv4, "IPv4Address"],
    ipv6: [parseIPv6, "IPv6Address"],
    uuid: [parseUuid, "UUID"],
  };
  const t = d.pyType ? typed[d.pyType] : undefined;
  if (t) {
    const v = t[0](s);
    if (v === undefined) throw qerr("QubesValueError", `Failed to parse property value as ${t[1]}`);
    return v;
  }
  for (const ch of s) if (!PRINTABLE.has(ch)) throw qerr("QubesValueError", "Invalid characters in property value");
  return s;
}
const PRINTABLE = new Set(
  "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \t\n\r\x0b\x0c",
);

function propertyMethods(prefix: string, pick: (ctx: CallContext) => Holder, destAdminvm: boolean | null): void {
  method(`${prefix}.List`, destAdminvm, false, false, (c) => lines(pick(c).props().map((p) => p.name)));
  method(`${prefix}.Get`, destAdminvm, true, false, (c) => {
    const h = pick(c);
    return serializeProperty(h, propDef(h, c.arg));
  });
  method(`${prefix}.GetAll`, destAdminvm, false, false, (c) => {
    const h = pick(c);
    return h
      .props()
      .map((d) => `${d.name} ${serializeProperty(h, d as PropDef<Holder>).replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n`)
      .join("");
  });
  method(`${prefix}.GetDefault`, destAdminvm, true, false, (c) => {
    const h = pick(c);
    const d = propDef(h, c.arg);
    const v = d.stateless ? d.stateless(h) : d.default ? d.default(h) : undefined;
    if (v === undefined) return null;
    return `type=${d.type} ${v === null ? "" : pyValueStr(v)}`;
  });
  method(`${prefix}.Help`, destAdminvm, true, false, (c) => {
    const h = pick(c);
    propDef(h, c.arg);
    return propertyHelp(h.tableClass(), c.arg) ?? "";
  });
  method(`${prefix}.Set`, destAdminvm, true, null, (c) => {
    const h = pick(c);
    const d = propDef(h, c.arg);
    const v = sanitize(d, c.payload);
    h.setProp(c.arg, v);
    return null;
  });
  method(`${prefix}.Reset`, destAdminvm, true, false, (c) => {
    const h = pick(c);
    propDef(h, c.arg);
    h.resetProp(c.arg);
    return null;
  });
}
propertyMethods("admin.property", (c) => c.app, true);
propertyMethods("admin.vm.property", (c) => c.dest, null);
