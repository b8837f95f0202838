/**
 * Pools and volumes (`admin.pool.*`, `admin.vm.volume.*`).
 */
import type { Volume } from "../model.js";
import { parsePyBool } from "../model.js";
import { SimAbort, isAscii, protocolError, qerr } from "../wire.js";
import { ascii, lines, method, type CallContext } from "./registry.js";

// ---------------------------------------------------------------------------
// Pools and volumes

function enforceArg(c: CallContext, wants: Iterable<string>, reason: string): void {
  if (![...wants].includes(c.arg)) throw qerr("PermissionDenied", `Argument not in '${reason}'`);
}
function validateNumber(payload: Buffer, name: string, allowNegative = false): number {
  let s = payload.toString("latin1");
  let k = 1;
  if (allowNegative && s.startsWith("-")) {
    k = -1;
    s = s.slice(1);
  }
  const cap = name.charAt(0).toUpperCase() + name.slice(1);
  if (!/^[0-9]+$/.test(s)) throw protocolError(`${cap} contains non ASCII digits`);
  if (s.length >= 20) throw protocolError(`${cap} is bigger than 19 decimal digits`);
  if (s[0] === "0" && s !== "0") throw protocolError(`${cap} contains spurious leading zeros`);
  return Number(s) * k;
}
function boolPayload(payload: Buffer): boolean {
  try {
    if (!isAscii(payload)) throw new Error();
    return parsePyBool(payload.toString("latin1"));
  } catch {
    throw protocolError("Payload is not boolean ASCII");
  }
}

const DRIVERS: Array<[string, string[], string[]]> = [
  ["file", ["revisions_to_keep", "dir_path", "ephemeral_volatile"], ["dir_path"]],
  ["file-reflink", ["revisions_to_keep", "dir_path", "setup_check", "ephemeral_volatile"], ["dir_path"]],
  ["linux-kernel", ["dir_path"], ["dir_path"]],
  ["lvm_thin", ["revisions_to_keep", "volume_group", "thin_pool", "ephemeral_volatile"], ["volume_group", "thin_pool"]],
  ["callback", ["conf_id"], ["conf_id"]],
  ["zfs", ["revisions_to_keep", "container", "ephemeral_volatile", "snap_on_start_forensics"], ["container"]],
];

method("admin.pool.List", true, false, false, (c) => lines(c.app.pools.keys()));
method("admin.pool.ListDrivers", true, false, false, () => DRIVERS.map(([d, ps]) => `${d} ${ps.join(" ")}\n`).join(""));
method("admin.pool.Info", true, true, false, (c) => {
  enforceArg(c, c.app.pools.keys(), "pools");
  const p = c.app.pools.get(c.arg)!;
  let out = Object.keys(p.config)
    .sort()
    .map((k) => `${k}=${p.config[k]}\n`)
    .join("");
  if (p.size !== undefined) out += `size=${p.size}\n`;
  if (p.usage !== undefined) out += `usage=${p.usage}\n`;
  if (p.includedIn) out += `included_in=${p.includedIn}\n`;
  return out;
});
method("admin.pool.UsageDetails", true, true, false, (c) => {
  enforceArg(c, c.app.pools.keys(), "pools");
  const p = c.app.pools.get(c.arg)!;
  let out = "";
  if (p.size !== undefined) out += `data_size=${p.size}\n`;
  if (p.usage !== undefined) out += `data_usage=${p.usage}\n`;
  return out;
});
method("admin.pool.Add", true, true, true, (c) => {
  enforceArg(c, DRIVERS.map((d) => d[0]), "available drivers");
  if (!isAscii(c.payload)) throw protocolError("Pool parameters contains non-ASCII characters");
  const cfgLines = c.payload.toString("latin1").split(/\r\n|\n|\r/);
  if (cfgLines.length && cfgLines[cfgLines.length - 1] === "") cfgLines.pop();
  if (!cfgLines.every((l) => l.includes("="))) throw protocolError("Options must be separated by equal sign");
  const pairs = cfgLines.map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as [string, string]);
  if (new Set(pairs.map((p) => p[0])).size !== pairs.length) throw protocolError("Options must be unique");
  const cfg = Object.fromEntries(pairs);
  if (!("name" in cfg)) throw protocolError("Pool configuration must contain key: name");
  const name = cfg.name!;
  delete cfg.name;
  if (!/^[A-Za-z0-9_.-]*$/.test(name)) throw protocolError("Pool name must be in safe set: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.");
  const drv = DRIVERS.find((d) => d[0] === c.arg)!;
  if (Object.keys(cfg).some((k) => !drv[1].includes(k))) throw protocolError("Unexpected driver options found");
  const missing = drv[2].filter((k) => !(k in cfg));
  if (missing.length) throw qerr("QubesException", `missing required driver options: ${missing.join(" ")}`);
  if (c.app.pools.has(name)) throw qerr("QubesPoolInUseError", `Storage pool is in use: '${name}'`);
  const config: Record<string, string> = { driver: c.arg, name, ...cfg };
  if (drv[1].includes("revisions_to_keep") && !("revisions_to_keep" in config)) config.revisions_to_keep = "1";
  if (drv[1].includes("ephemeral_volatile") && !("ephemeral_volatile" in config)) config.ephemeral_volatile = "False";
  c.app.pools.set(name, { name, driver: c.arg, config, size: c.arg === "file" || c.arg === "file-reflink" ? 270553174016 : undefined, usage: c.arg === "file" || c.arg === "file-reflink" ? 0 : undefined, volumes: [] });
  c.app.emit("pool-add", [["pool", name]]);
  return null;
});
/** Python's default `repr` of a pool object of each driver (`Pool` has no `__repr__`). */
const POOL_CLASSES: Record<string, string> = {
  file: "qubes.storage.file.FilePool",
  "file-reflink": "qubes.storage.reflink.ReflinkPool",
  "linux-kernel": "qubes.storage.kernels.LinuxKernel",
  lvm_thin: "qubes.storage.lvm.ThinPool",
  callback: "qubes.storage.callback.CallbackPool",
  zfs: "qubes.storage.zfs.ZFSPool",
};
method("admin.pool.Remove", true, true, false, (c) => {
  enforceArg(c, c.app.pools.keys(), "pools");
  const p = c.app.pools.get(c.arg)!;
  // `Qubes.remove_pool`: the qubes' volumes first (not the pool's listing; the error quotes the pool object), then the default pools in this
  // order, compared by identity, so a default that falls back to this pool counts too
  const inUse = [...c.app.domains.values()].some((q) => [...q.volumes.values()].some((v) => v.pool === c.arg));
  if (inUse) throw qerr("QubesPoolInUseError", `Storage pool is in use: <${POOL_CLASSES[p.driver] ?? "qubes.storage.Pool"} object at 0x7f0000100000>`);
  for (const suffix of ["", "_kernel", "_private", "_root", "_volatile"]) {
    if (c.app.getProp(`default_pool${suffix}`) === c.arg) throw qerr("QubesPoolInUseError", `Storage pool is in use: set as default_pool${suffix}`);
  }
  c.app.emit("pool-pre-delete", [["pool", c.arg]]);
  c.app.pools.delete(c.arg);
  c.app.emit("pool-delete", [["pool", c.arg]]);
  return null;
});
method("admin.pool.volume.List", true, true, false, (c) => {
  enforceArg(c, c.app.pools.keys(), "pools");
  const pool = c.app.pools.get(c.arg)!;
  // `LinuxKernel.list_volumes`: the kernels installed in its directory
  if (pool.driver === "linux-kernel") return lines([...c.app.kernels]);
  return lines(pool.volumes);
});
method("admin.pool.Set.revisions_to_keep", true, true, true, (c) => {
  enforceArg(c, c.app.pools.keys(), "pools");
  const n = validateNumber(c.payload, "revisions to keep", true);
  if (n < -1) throw protocolError("Value can't be lower than -1");
  if (c.app.pools.get(c.arg)!.driver === "linux-kernel" && n !== 0) throw qerr("QubesValueError", "LinuxKernel supports only revisions_to_keep=0");
  c.app.pools.get(c.arg)!.config.revisions_to_keep = String(n);
  return null;
});
method("admin.pool.Set.ephemeral_volatile", true, true, true, (c) => {
  enforceArg(c, c.app.pools.keys(), "pools");
  const v = boolPayload(c.payload);
  const pool = c.app.pools.get(c.arg)!;
  // every pool takes the attribute; only drivers with the parameter show it in their config (not `linux-kernel`)
  if (DRIVERS.find(([d]) => d === pool.driver)?.[1].includes("ephemeral_volatile")) pool.config.ephemeral_volatile = v ? "True" : "False";
  return null;
});

/** A volume of the `linux-kernel` driver (`LinuxModules`). */
function isKernelVolume(c: CallContext, v: Volume): boolean {
  return c.app.pools.get(v.pool)?.driver === "linux-kernel";
}

function vol(c: CallContext): Volume {
  enforceArg(c, c.dest.volumes.keys(), `${c.dest.name} volumes`);
  return c.dest.volumes.get(c.arg)!;
}
method("admin.vm.volume.List", null, false, false, (c) => lines(c.dest.volumes.keys()));
method("admin.vm.volume.Info", null, true, false, (c) => {
  let v = vol(c);
  if (isKernelVolume(c, v)) {
    // `LinuxModules`: vid and path follow the qube's current kernel
    const k = c.dest.getProp("kernel");
    // `vm.kernel` falls back to a global default_kernel that has no value: AttributeError, no reply
    if (k === undefined) throw new SimAbort("AttributeError: property 'default_kernel' have no default");
    const dirPath = c.app.pools.get(v.pool)?.config.dir_path ?? "/var/lib/qubes/vm-kernels";
    v = { ...v, vid: k ? String(k) : "", path: k ? `${dirPath}/${k}/modules.img` : "" };
  }
  const b = (x: boolean) => (x ? "True" : "False");
  return (
    `pool=${v.pool}\nvid=${v.vid}\nsize=${v.size}\nusage=${v.usage}\nrw=${b(v.rw)}\nsource=${v.source}\npath=${v.path}\n` +
    `save_on_stop=${b(v.saveOnStop)}\nsnap_on_start=${b(v.snapOnStart)}\nrevisions_to_keep=${v.revisionsToKeep}\nephemeral=${b(v.ephemeral)}\nis_outdated=${b(c.app.isOutdated(v))}\n`
  );
});
method("admin.vm.volume.ListSnapshots", null, true, false, (c) => lines(vol(c).revisions ?? []));
method("admin.vm.volume.Revert", null, true, true, (c) => {
  vol(c);
  const rev = ascii(c.payload).trim();
  if (!/^[A-Za-z0-9:_.-]*$/.test(rev)) throw protocolError("Revision name must be in safe set: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.");
  const v = c.dest.volumes.get(c.arg)!;
  // an unknown revision: upstream raises a KeyError-only exception here, which qubesd does not answer
  const i = (v.revisions ?? []).indexOf(rev);
  if (i < 0) throw new SimAbort("QubesVolumeRevisionNotFoundError");
  // `ReflinkVolume.revert`: the current image becomes a revision (no pruning), the chosen one comes back
  if (v.dirty) throw qerr("StoragePoolException", `Cannot revert: ${v.vid} is not cleanly stopped`);
  if (v.revisionsToKeep !== 0) v.revisions!.push(c.app.nextRevision(v));
  v.revisions!.splice(i, 1);
  c.app.replaceImage(v);
  return null;
});
method("admin.vm.volume.CloneFrom", null, true, false, (c) => {
  vol(c);
  const t = c.app.newToken();
  c.app.cloneTokens.set(t, { qube: c.dest, volume: c.arg });
  return t;
});
method("admin.vm.volume.CloneTo", null, true, true, (c) => {
  const v = vol(c);
  if (!isAscii(c.payload)) throw protocolError("Token contains non-ASCII characters");
  const token = c.payload.toString("latin1").trim();
  const src = c.app.cloneTokens.get(token);
  if (!src) throw qerr("QubesVolumeCopyTokenNotFoundError", "'Token to clone volume of qube was not found'");
  c.app.cloneTokens.delete(token);
  const sv = src.qube.volumes.get(src.volume);
  if (!sv || !c.app.domains.has(src.qube.name)) throw new SimAbort("QubesVolumeNotFoundError");
  v.size = sv.size;
  // `import_volume` of a `save_on_stop` volume commits the copy
  if (v.saveOnStop) c.app.commitVolume(v);
  return null;
});
method("admin.vm.volume.Resize", null, true, true, (c) => {
  const v = vol(c);
  const size = validateNumber(Buffer.from(c.payload.toString("latin1").trim(), "latin1"), "volume size");
  // qubesd saves qubes.xml in a `finally`: when it cannot be saved, a failed resize dies without a reply too
  try {
    if (isKernelVolume(c, v)) throw new SimAbort("NotImplementedError: LinuxModules cannot be resized");
    // `ReflinkVolume.resize` (varlibqubes is a file-reflink pool): only a read-write volume
    if (!v.rw && c.app.pools.get(v.pool)?.driver === "file-reflink") throw qerr("StoragePoolException", `Cannot resize: ${v.vid} is read-only`);
  } catch (e) {
    if (c.app.storeUnsaveable()) throw new SimAbort("AttributeError: no default_kernel while saving qubes.xml");
    throw e;
  }
  v.size = size;
  // `ReflinkVolume.resize` of a stopped `save_on_stop` volume copies its clean image to a new file of the new size
  // (the running snapshots of it are outdated from then on); a started one resizes its dirty image
  if (c.app.pools.get(v.pool)?.driver === "file-reflink" && v.saveOnStop && !v.snapOnStart && !v.dirty) c.app.replaceImage(v);
  return null;
});
method("admin.vm.volume.Clear", null, true, false, (c) => {
  const v = vol(c);
  // `Storage.import_data`: each driver's `import_data` decides (qubesd checks no power state itself)
  const driver = c.app.pools.get(v.pool)?.driver;
  if (isKernelVolume(c, v)) throw new SimAbort("NotImplementedError: Cannot import_data: not implemented");
  if (driver === "file-reflink" && !v.saveOnStop) throw new SimAbort(`NotImplementedError: Cannot import_data: ${v.vid} is not save_on_stop`);
  if (driver === "file" && !v.saveOnStop) throw qerr("StoragePoolException", `Can not import into save_on_stop=False volume ${v.vid}`);
  if (driver === "lvm_thin" && v.saveOnStop && c.dest.power !== "Halted") throw qerr("StoragePoolException", `Cannot import data to dirty volume ${v.vid}, stop the qube first`);
  c.dest.emit("domain-volume-import-begin", [["volume", c.arg], ["size", v.size]]);
  v.usage = 0;
  c.app.commitVolume(v);
  c.dest.emit("domain-volume-import-end", [["volume", c.arg], ["success", true]]);
  return null;
});
method("admin.vm.volume.Set.revisions_to_keep", null, true, true, (c) => {
  const v = vol(c);
  const n = validateNumber(c.payload, "revisions to keep", true);
  // `Storage.set_revisions_to_keep`: -1 (snapshots disabled) is the least; enabling or disabling snapshots needs
  // the qube halted, and for an app qube its disposables too (the first running one, by name, is named)
  if (n < -1) throw qerr("QubesValueError", "Invalid value for revisions_to_keep");
  if (n !== v.revisionsToKeep && (n === -1 || v.revisionsToKeep === -1)) {
    if (c.dest.isActive()) throw qerr("QubesVMNotHaltedError", `Domain is not powered off: '${c.dest.name}'`);
    const running = c.dest.klass === "AppVM" ? c.app.dispvmsOf(c.dest).find((d) => d.isActive()) : undefined;
    if (running) throw qerr("QubesVMNotHaltedError", `Domain is not powered off: '${running.name}'`);
  }
  if (isKernelVolume(c, v) && n !== 0) throw qerr("QubesValueError", "LinuxModules supports only revisions_to_keep=0");
  v.revisionsToKeep = n;
  return null;
});
method("admin.vm.volume.Set.rw", null, true, true, (c) => {
  const v = vol(c);
  const b = boolPayload(c.payload);
  if (c.dest.power !== "Halted") throw qerr("QubesVMNotHaltedError", `Domain is not powered off: '${c.dest.name}'`);
  if (isKernelVolume(c, v) && b) throw qerr("QubesValueError", "LinuxModules supports only read-only volumes");
  v.rw = b;
  return null;
});
method("admin.vm.volume.Set.ephemeral", null, true, true, (c) => {
  const v = vol(c);
  const b = boolPayload(c.payload);
  if (isKernelVolume(c, v)) throw qerr("QubesValueError", "LinuxModules does not support setting ephemeral value");
  if (b && (v.snapOnStart || v.saveOnStop || !v.rw)) throw qerr("QubesValueError", "Cannot enable ephemeral on snap_on_start or save_on_stop or non-dom0 or not writable volume");
  v.ephemeral = b;
  v.ephemeralSet = true;
  return null;
});
