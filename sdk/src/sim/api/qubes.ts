/**
 * Creating and removing qubes, disposables included (`admin.vm.Create*`, `admin.vm.CreateDisposable`, `admin.vm.Remove`).
 */
import type { Qube, Volume } from "../model.js";
import { VM_CLASSES, validateName } from "../model.js";
import { SimAbort, SimError, isAscii, protocolError, qerr } from "../wire.js";
import { method, type MethodDef } from "./registry.js";
import { validateLabelName } from "./system.js";

// ---------------------------------------------------------------------------
// Create / remove

function createMethod(klass: string, allowPool: boolean): MethodDef["run"] {
  return (c) => {
    const app = c.app;
    const kw: Record<string, string> = {};
    let template: string | undefined;
    let invalidTemplate = false;
    if (c.arg) {
      if (klass !== "AppVM" && klass !== "DispVM") throw protocolError(`${klass} cannot be based on template`);
      if (app.domains.has(c.arg)) template = c.arg;
      else invalidTemplate = true;
    }
    if (!isAscii(c.payload)) throw protocolError("Parameters contains non-ASCII characters");
    let invalidLabel = false;
    let pool: string | undefined;
    const pools: Record<string, string> = {};
    let poolError: SimError | undefined;
    // qubesd checks uniqueness against its keyword arguments, which already hold `template` when the argument names a qube
    const seen = new Set<string>(template !== undefined ? ["template"] : []);
    for (const param of c.payload.toString("latin1").split(" ")) {
      const eq = param.indexOf("=");
      if (eq < 0) throw new SimAbort("ValueError: not enough values to unpack");
      const key = param.slice(0, eq);
      const value = param.slice(eq + 1);
      if (seen.has(key)) throw protocolError("Options must be unique");
      if (key === "name") {
        validateName(value);
        kw.name = value;
        seen.add(key);
      } else if (key === "label") {
        validateLabelName(value, true);
        try {
          kw.label = app.getLabel(value).name;
          seen.add(key);
        } catch {
          invalidLabel = true;
        }
      } else if (key === "pool" && allowPool) {
        if (pool !== undefined) throw protocolError("Option 'pool' must be unique");
        if (app.pools.has(value)) pool = value;
        else poolError = qerr("QubesException", `Unknown storage pool ${value}`);
      } else if (key.startsWith("pool:") && allowPool) {
        const vol = key.slice(5);
        if (!["root", "private", "volatile", "kernel"].includes(vol)) throw protocolError("Volume must be one of: root, private, volatile, kernel");
        if (vol in pools) throw protocolError(`Option 'pool:${vol}' must be unique`);
        if (app.pools.has(value)) pools[vol] = value;
        else poolError = qerr("QubesException", `Unknown storage pool ${value}`);
      } else {
        if (!allowPool && (key === "pool" || key.startsWith("pool:"))) throw protocolError("Pool option specified but 'allow_pool' is False");
        throw protocolError("Options does not match: name, label, pool, pool:");
      }
    }
    for (const k of ["name", "label"]) if (!(k in kw)) throw protocolError(`Creation requested without key: ${k}`);
    if (pool && Object.keys(pools).length) throw protocolError("Conflicting options specified: 'pool=', 'pool:volume='");
    if (app.domains.has(kw.name!)) throw qerr("QubesVMAlreadyExistsError", `Qube already exists: ${kw.name}`);
    if (invalidTemplate) throw qerr("QubesVMNotFoundError", `No such domain: '${c.arg}'`);
    if (invalidLabel) throw qerr("QubesLabelNotFoundError", "Label does not exist: untrusted label");
    if (poolError) throw poolError;
    let cloneFrom: Qube | undefined;
    if (klass === "AppVM" || klass === "DispVM") {
      // `app.add_new_vm`: the default template (the default disposable template for a DispVM)
      const t = template ?? ((klass === "AppVM" ? app.getProp("default_template") : app.getProp("default_dispvm")) as string | null | undefined);
      // A reset `default_template` has no value at all: reading it raises AttributeError in qubesd,
      // which closes the connection; set to None, `add_new_vm` refuses with its message.
      if (t === undefined) throw new SimAbort("AttributeError: property 'default_template' have no default");
      if (!t) throw qerr("QubesValueError", "Template for the qube not specified, nor default template set.");
      const tq = app.domains.get(t)!;
      if (klass === "DispVM" && tq.getProp("template_for_dispvms") !== true)
        throw qerr("QubesValueError", `template for disposable (${t}) needs to be an AppVM with template_for_dispvms=True`);
      if (klass === "AppVM" && tq.klass !== "TemplateVM")
        throw qerr("QubesPropertyValueError", `wrong VM class: domains[${tq.pyRepr()}] is of type ${tq.klass} and not TemplateVM`);
      if (klass === "DispVM") cloneFrom = tq;
      template = t;
    }
    // `AdminVM(app, None, qid=...)`: its qid is read-only
    if (klass === "AdminVM") throw qerr("QubesPropertyValueError", "property 'qid' on AdminVM instance cannot be set");
    app.addQube(klass, kw.name!, kw.label!, {
      template,
      pool,
      pools,
      createdBy: c.src.name,
      dispid: klass === "DispVM" ? app.newDispid() : undefined,
      cloneFrom,
    });
    return null;
  };
}
for (const klass of VM_CLASSES) {
  method(`admin.vm.Create.${klass}`, true, null, null, createMethod(klass, false));
  method(`admin.vm.CreateInPool.${klass}`, true, null, null, createMethod(klass, true));
}

method("admin.vm.CreateDisposable", null, null, null, (c) => {
  if (!["", "preload"].includes(c.arg)) throw qerr("PermissionDenied", "Argument not in \"'', 'preload'\"");
  const p = c.payload.toString("latin1");
  if (p !== "" && p !== "uuid") throw protocolError("Invalid payload, expected empty string or 'uuid'");
  const appvmName = c.dest.name === "dom0" ? c.src.getProp("default_dispvm") : c.dest.name;
  const appvm = typeof appvmName === "string" ? c.app.domains.get(appvmName) : undefined;
  if (c.arg === "preload") {
    // `domain-preload-dispvm-start` on the disposable template (no template: qubesd crashes)
    if (!appvm) throw new SimAbort("AttributeError: 'NoneType' object has no attribute 'fire_event_async'");
    if (appvm.klass !== "AppVM" && appvm.klass !== "StandaloneVM") return null;
    const missing = ["qubes.WaitForRunningSystem", "qubes.WaitForSession"].filter((s) => !truthyFeature(appvm.featureWithTemplate(`supported-rpc.${s}`)));
    if (missing.length)
      throw qerr("QubesValueError", `Qube does not support the RPC(s) '${missing.join(", ")}' but tried to preload, check if template is outdated`);
    return null;
  }
  if (!appvm || appvm.getProp("template_for_dispvms") !== true)
    throw qerr("QubesException", "Refusing to create disposable out of app qube which has template_for_dispvms=False");
  const dispid = c.app.newDispid();
  const name = `disp${dispid}`;
  // `DispVM.__init__` clones the template's label only when it has one
  const label = appvm.getProp("label");
  const q = c.app.addQube("DispVM", name, label === undefined || label === null ? undefined : String(label), {
    template: appvm.name,
    dispid,
    extra: (d) => d.values.set("auto_cleanup", true),
    cloneFrom: appvm,
  });
  c.app.addCreatedByTag(q, c.src.name);
  q.addTag(`disp-created-by-${c.src.name}`);
  return p === "uuid" ? `uuid:${q.uuid}` : q.name;
});

/** Python's truth of a feature value (`features.check_with_template(name, False)`). */
function truthyFeature(v: string | undefined): boolean {
  return v !== undefined && v !== "";
}

method("admin.vm.Remove", null, false, false, (c) => {
  if (c.dest.name === "dom0") throw qerr("QubesVMInUseError", "'dom0' cannot be removed");
  if (c.dest.getProp("installed_by_rpm") === true) throw qerr("QubesVMInUseError", `VM installed by package manager: ${c.dest.name}`);
  c.app.removeQube(c.dest);
  return null;
});
