/**
 * System-wide methods: classes, `admin.vm.List`, labels, power, notes, events, stats and backup.
 */
import { DEVICE_CLASSES, VM_CLASSES } from "../model.js";
import { SimAbort, isAscii, protocolError, qerr } from "../wire.js";
import { lines, method } from "./registry.js";

// ---------------------------------------------------------------------------
// Global

method("admin.vmclass.List", true, false, false, () => lines(VM_CLASSES));
method("admin.deviceclass.List", true, false, false, () => lines(DEVICE_CLASSES));

method("admin.vm.List", null, false, false, (c) => {
  let qubes = c.dest.name === "dom0" ? c.app.sortedDomains() : [c.dest];
  // the policy filter of a non-dom0 caller builds the system info first, reading every qube's label icon
  if (!c.src.isAdminVM && [...c.app.domains.values()].some((q) => q.getProp("label") === undefined))
    throw new SimAbort("AttributeError: property 'label' have no default");
  if (!c.src.isAdminVM) qubes = qubes.filter((q) => c.policyAllows("admin.vm.List", "", c.src.name, q.name));
  return qubes.map((q) => `${q.name} class=${q.klass} state=${q.power} uuid=${q.uuid}\n`).join("");
});

// Labels

export function validateLabelName(name: string, creation = false): void {
  if (!name) throw qerr("QubesInvalidLabelError", "Label name must be set");
  if (creation && /^\d+$/.test(name)) throw qerr("QubesInvalidLabelError", "Label must not be a digit");
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw qerr("QubesInvalidLabelError", "Label must be in safe set: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.");
}

method("admin.label.List", true, false, false, (c) => lines([...c.app.labels.values()].map((l) => l.name)));
method("admin.label.Get", true, true, false, (c) => {
  validateLabelName(c.arg);
  const l = c.app.getLabel(c.arg);
  if (l.createdByApi) throw new SimAbort("AttributeError: 'bytes' object has no attribute 'encode' (label created through admin.label.Create)");
  return l.color;
});
method("admin.label.Index", true, true, false, (c) => {
  validateLabelName(c.arg);
  return String(c.app.getLabel(c.arg).index);
});
method("admin.label.Create", true, true, true, (c) => {
  validateLabelName(c.arg, true);
  if (!isAscii(c.payload)) throw qerr("QubesInvalidLabelValueError", "Label value must be encoded in ASCII");
  const v = c.payload.toString("latin1").trim();
  if (v.length !== 8) throw qerr("QubesInvalidLabelValueError", "Label value must have length of 8");
  if (!v.startsWith("0x")) throw qerr("QubesInvalidLabelValueError", "Label value must start with: 0x");
  if (!/^[0-9a-fA-F]{6}$/.test(v.slice(2)))
    throw qerr("QubesInvalidLabelValueError", "Label value must only contain hexadecimal digits after prefix: 0123456789abcdefABCDEF");
  let exists = false;
  try {
    c.app.getLabel(c.arg);
    exists = true;
  } catch {
    exists = false;
  }
  if (exists) throw qerr("QubesLabelInUseError", `Label is still in use: '${c.arg}'`);
  const index = Math.max(8, ...c.app.labels.keys()) + 1;
  c.app.labels.set(index, { index, name: c.arg, color: c.payload.toString("latin1"), createdByApi: true });
  return null;
});
method("admin.label.Remove", true, true, false, (c) => {
  validateLabelName(c.arg);
  const l = c.app.getLabel(c.arg);
  if (l.index <= 8) throw protocolError("Can only remove custom labels");
  for (const q of c.app.domains.values()) if (q.getProp("label") === l.name) throw qerr("QubesLabelInUseError", `Label is still in use: ${l.name}`);
  c.app.labels.delete(l.index);
  return null;
});

// ---------------------------------------------------------------------------
// Power

method("admin.vm.Start", null, false, false, (c) => (c.app.start(c.dest), null));
method("admin.vm.Shutdown", null, null, false, (c) => {
  const args = c.arg ? c.arg.split("+") : [];
  if (!args.every((a) => a === "force" || a === "wait")) throw protocolError("Argument must match: force, wait");
  c.app.shutdown(c.dest, args.includes("force"), args.includes("wait"));
  return null;
});
method("admin.vm.Kill", null, false, false, (c) => (c.app.kill(c.dest), null));
method("admin.vm.Pause", null, false, false, (c) => (c.app.pause(c.dest), null));
method("admin.vm.Unpause", null, false, false, (c) => (c.app.unpause(c.dest), null));
method("admin.vm.Suspend", null, false, false, (c) => (c.app.suspend(c.dest), null));
method("admin.vm.Resume", null, false, false, (c) => (c.app.resume(c.dest), null));
method("admin.vm.CurrentState", null, false, false, (c) => {
  const q = c.dest;
  // a RemoteVM reports 0 for memory and CPU time, whatever its (always "Running") state
  const running = q.power !== "Halted" && q.klass !== "RemoteVM";
  const mem = q.isAdminVM ? c.app.host.dom0MemoryKiB : running ? Number(q.getProp("memory")) * 1024 : 0;
  const cputime = running ? Math.max(1, Math.round(process.uptime() * 1e9)) : 0;
  const maxMem = q.isAdminVM ? c.app.host.dom0MemoryKiB : 0;
  return `mem=${mem} mem_static_max=${maxMem} cputime=${cputime} power_state=${q.power}`;
});
method("admin.vm.Console", null, false, false, (c) => {
  // `is_running()` is libvirt's `isActive()`: a paused qube has its console too
  if (c.dest.power === "Halted") throw qerr("QubesVMNotRunningError", `Domain not running (either powered off or paused): '${c.dest.name}'`);
  // a RemoteVM "runs" but has no libvirt domain to read the console from
  if (c.dest.klass === "RemoteVM") throw new SimAbort("AttributeError: 'RemoteVM' object has no attribute 'libvirt_domain'");
  // the `tty` of the console in the libvirt XML: dom0's domain has none
  return c.dest.isAdminVM ? "" : `/dev/pts/${c.dest.xid}`;
});

// ---------------------------------------------------------------------------
// Notes

method("admin.vm.notes.Get", false, false, false, (c) => c.dest.notes);
method("admin.vm.notes.Set", false, false, true, (c) => {
  if (c.payload.length > 256000) throw protocolError(`Maximum note size is 256000 bytes (${c.payload.length} bytes received)`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(c.payload);
  } catch (e) {
    throw protocolError("Unable to sanitise qube notes: 'utf-8' codec can't decode bytes");
  }
  // Stand-in for libqubes-pure: control characters other than TAB/LF become `_`.
  c.dest.notes = [...text].map((ch) => (/[\p{Cc}\p{Cs}\p{Co}\p{Cn}]/u.test(ch) && ch !== "\t" && ch !== "\n" ? "_" : ch)).join("");
  return null;
});

// ---------------------------------------------------------------------------
// Events and stats

method("admin.Events", null, false, false, (c) => ({
  kind: "stream",
  start(send) {
    const filter = c.src.isAdminVM
      ? undefined
      : (subject: string | null, event: string, kwargs: ReadonlyArray<readonly [string, string]>) => {
          const vmArg = kwargs.find(([k]) => k === "vm");
          const dest = subject ?? (vmArg ? vmArg[1] : "@adminvm");
          return c.policyAllows("admin.Events", event.replace(/:/g, "_"), c.src.name, dest);
        };
    const listener = { qube: c.dest.name === "dom0" ? null : c.dest, filter, send };
    c.app.listeners.add(listener);
    send("", "connection-established", []);
    return () => {
      c.app.listeners.delete(listener);
    };
  },
}));

method("admin.vm.Stats", null, false, false, (c) => ({
  kind: "stream",
  start(send) {
    send("", "connection-established", []);
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const tick = () => {
      if (stopped) return;
      const qubes = c.dest.name === "dom0" ? [...c.app.domains.values()] : [c.dest];
      for (const q of qubes) {
        if (q.power === "Halted" || q.klass === "RemoteVM" || !c.app.domains.has(q.name)) continue;
        const mem = q.isAdminVM ? c.app.host.dom0MemoryKiB : Number(q.getProp("memory")) * 1024;
        const cpus = q.isAdminVM ? c.app.host.cpus : Number(q.getProp("vcpus"));
        const ms = String(Math.round(process.uptime() * 1000));
        send(q.name, "vm-stats", [
          ["memory_kb", String(mem)],
          ["memory_assigned_total", String(mem)],
          ["memory_assigned_usable", String(mem)],
          ["memory_with_swap_used", String(mem)],
          ["cpu_time", ms],
          ["cpu_usage", "0"],
          ["online_vcpus", String(cpus)],
        ]);
      }
      const interval = Number(c.app.getProp("stats_interval") ?? 3);
      timer = setTimeout(tick, Math.max(0.05, interval) * 1000);
      timer.unref?.();
    };
    tick();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  },
}));

// ---------------------------------------------------------------------------
// Backup (profiles are not simulated: every profile is missing)

for (const name of ["admin.backup.Execute", "admin.backup.Info"]) {
  method(name, true, true, false, (c) => {
    if (c.arg.includes("/")) throw protocolError("Backup profile ID must not contain forward slash character");
    throw qerr("QubesBackupProfileNotFoundError", `Backup profile does not exist: ${c.arg}`);
  });
}
method("admin.backup.Cancel", true, true, false, (c) => {
  if (c.arg.includes("/")) throw protocolError("Backup profile ID must not contain forward slash character");
  throw qerr("QubesException", "Backup operation not running");
});
