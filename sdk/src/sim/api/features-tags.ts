/**
 * Features and tags (`admin.vm.feature.*`, `admin.vm.tag.*`).
 */
import type { Qube } from "../model.js";
import { PROHIBITED_FEATURES } from "../model.js";
import { isAscii, protocolError, qerr } from "../wire.js";
import { lines, method, type CallContext, type MethodDef } from "./registry.js";

// ---------------------------------------------------------------------------
// Features and tags

function featureGetter(pick: (q: Qube, name: string) => string | undefined): MethodDef["run"] {
  return (c) => {
    const v = pick(c.dest, c.arg);
    if (v === undefined) throw qerr("QubesFeatureNotFoundError", `Feature not set for domain ${c.dest.name}: ${c.arg}`);
    return v;
  };
}
method("admin.vm.feature.List", null, false, false, (c) => lines(c.dest.features.keys()));
method("admin.vm.feature.Get", null, true, false, featureGetter((q, n) => q.features.get(n)));
method("admin.vm.feature.CheckWithTemplate", null, true, false, featureGetter((q, n) => q.featureWithTemplate(n)));
method("admin.vm.feature.CheckWithNetvm", null, true, false, featureGetter((q, n) => q.featureWithNetvm(n)));
method("admin.vm.feature.CheckWithAdminVM", null, true, false, featureGetter((q, n) => q.featureWithAdminVM(n)));
method("admin.vm.feature.CheckWithTemplateAndAdminVM", null, true, false, featureGetter((q, n) => q.featureWithTemplateAndAdminVM(n)));
const PROHIBITED_MSG = "changing this feature is prohibited by qubes.ext.admin.AdminExtension";
method("admin.vm.feature.Remove", null, true, false, (c) => {
  if (PROHIBITED_FEATURES.has(c.arg)) throw qerr("PermissionDenied", PROHIBITED_MSG);
  if (!c.dest.features.has(c.arg)) throw qerr("QubesFeatureNotFoundError", `Feature not set for domain ${c.dest.name}: ${c.arg}`);
  c.dest.removeFeature(c.arg);
  return null;
});
method("admin.vm.feature.Set", null, true, null, (c) => {
  if (!isAscii(c.payload)) throw protocolError("Feature value contains non-ASCII characters");
  const value = c.payload.toString("latin1");
  if (!/^[a-zA-Z0-9_.-]+$/.test(c.arg)) throw protocolError("feature name contains illegal characters");
  if (!/^[\x20-\x7e]*$/.test(value)) throw protocolError(`${c.arg} value contains illegal characters`);
  if (PROHIBITED_FEATURES.has(c.arg)) throw qerr("PermissionDenied", PROHIBITED_MSG);
  c.dest.setFeature(c.arg, value);
  return null;
});

function validateTag(tag: string): void {
  if (!tag) throw qerr("QubesInvalidTagError", "tag cannot be empty");
  if (!/^[A-Za-z0-9_-]+$/.test(tag)) throw qerr("QubesInvalidTagError", "disallowed characters");
}
function tagPermission(c: CallContext): void {
  if (c.arg.startsWith("created-by-") && !c.src.isAdminVM)
    throw qerr("PermissionDenied", "changing this tag is prohibited by qubes.ext.admin.AdminExtension");
}
method("admin.vm.tag.List", null, false, false, (c) => lines([...c.dest.tags].sort()));
method("admin.vm.tag.Get", null, true, false, (c) => (validateTag(c.arg), c.dest.tags.has(c.arg) ? "1" : "0"));
method("admin.vm.tag.Set", null, true, false, (c) => {
  validateTag(c.arg);
  tagPermission(c);
  c.dest.addTag(c.arg);
  return null;
});
method("admin.vm.tag.Remove", null, true, false, (c) => {
  validateTag(c.arg);
  tagPermission(c);
  if (!c.dest.tags.has(c.arg)) throw qerr("QubesTagNotFoundError", `Tag not set for domain ${c.dest.name}: ${c.arg}`);
  c.dest.removeTag(c.arg);
  return null;
});
