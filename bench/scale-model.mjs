/**
 * Large inputs for the auditor's commands (bench/scale.mjs):
 * a deterministic N-qube system, on the same base as bench/diff.mjs's 300-qube one ({@link machineBase})
 * (templates, disposable templates, service qubes, app qubes with tags), the
 * realistic dom0 policy of bench/dom0-policy.mjs, its edited copy, and a
 * policy that names many qubes one by one.
 */
import { realisticPolicy } from "./dom0-policy.mjs";

/**
 * The qubes every bench machine starts with (dom0, templates, disposable templates, service
 * qubes), and `q(name, fields)` to add more in GetSystemInfo's shape with the next uuid; shared
 * with bench/diff.mjs's 300-qube system.
 */
export function machineBase() {
  const domains = {};
  let n = 0;
  const uuid = () => `00000000-0000-4000-8000-${String(++n).padStart(12, "0")}`;
  const q = (name, o) =>
    (domains[name] = { internal: null, tags: [], type: "AppVM", template_for_dispvms: false, default_dispvm: "default-dvm", icon: "appvm-red", label: "0xcc0000", guivm: "dom0", relayvm: null, transport_rpc: null, power_state: "Halted", uuid: uuid(), ...o });
  q("dom0", { type: "AdminVM", default_dispvm: "default-dvm", power_state: "Running", uuid: "00000000-0000-0000-0000-000000000000", guivm: null });
  for (const t of ["fedora-41", "fedora-41-xfce", "fedora-41-minimal", "debian-12", "debian-12-minimal", "whonix-gateway-17", "whonix-workstation-17", "fedora-41-dvm-tpl", "debian-12-sys", "archlinux"]) q(t, { type: "TemplateVM", tags: t.startsWith("whonix") ? ["whonix-updatevm"] : [] });
  for (const d of ["default-dvm", "work-dvm", "personal-dvm", "whonix-workstation-17-dvm", "offline-dvm"]) q(d, { template_for_dispvms: true, tags: d === "work-dvm" ? ["work"] : [] });
  q("default-mgmt-dvm", { template_for_dispvms: true, internal: "1" });
  for (const s of ["sys-net", "sys-firewall", "sys-usb", "sys-whonix", "sys-audio", "sys-gui", "sys-vpn", "sys-print", "sys-gpg", "sys-pdf"]) q(s, { power_state: "Running", tags: s === "sys-whonix" ? ["anon-gateway"] : [] });
  return { domains, q };
}

/** A deterministic system of `size` qubes (GetSystemInfo's `domains`). */
export function largeSystem(size = 2000) {
  const { domains, q } = machineBase();
  q("vault", { tags: ["gpg-server"], default_dispvm: null, power_state: "Running" });
  q("work", { tags: ["work", "gpg-client"], default_dispvm: "work-dvm", power_state: "Running" });
  q("personal", { tags: ["personal"], power_state: "Running" });
  q("untrusted", { tags: ["untrusted"], power_state: "Running" });
  q("mgmt", { tags: ["admin-client"] });
  const tagSets = [["work"], ["work", "gpg-client"], ["personal"], ["personal", "gpg-client"], ["untrusted"], ["dev"], ["dev", "work"], ["banking"], [], ["managed"]];
  let i = 0;
  while (Object.keys(domains).length < size) {
    const tags = tagSets[i % tagSets.length];
    // Every 50th app qube is a disposable template of its own (many @dispvm:X targets).
    const dvm = i % 50 === 49;
    q(`app-${String(i).padStart(4, "0")}`, { tags, default_dispvm: tags.includes("work") ? "work-dvm" : "default-dvm", power_state: i % 3 ? "Halted" : "Running", ...(dvm ? { template_for_dispvms: true } : {}) });
    i++;
  }
  return { domains };
}

/** The realistic dom0 policy (bench/dom0-policy.mjs), with app names of this system. */
export function dom0Policy() {
  const f = realisticPolicy();
  // dom0-policy.mjs names app-NNN (3 digits); this system's are app-NNNN.
  for (const k of Object.keys(f)) f[k] = f[k].replace(/app-(\d{3})\b/g, "app-0$1");
  return f;
}

/** The six edits of bench/diff.mjs. */
export function editedPolicy(f) {
  const e = { ...f };
  e["30-user.policy"] = e["30-user.policy"]
    .replace("qubes.Filecopy  *  app-0014  vault  deny notify=no", "qubes.Filecopy  *  app-0014  vault  allow")
    .replace("qubes.Filecopy  *  @tag:untrusted  @tag:work  deny\n", "")
    .replace("qubes.Gpg  *  @tag:gpg-client  @tag:gpg-server  allow", "qubes.Gpg  *  @tag:gpg-client  @tag:gpg-server  ask default_target=vault")
    .concat("qubes.ConnectTCP  +22  @tag:dev  sys-net  allow\n");
  e["50-config-distribution.policy"] = e["50-config-distribution.policy"].replace("qubes.PdfConvert  *  @anyvm  @anyvm  ask", "qubes.PdfConvert  *  @anyvm  sys-pdf  allow\nqubes.PdfConvert  *  @anyvm  @anyvm  ask");
  e["include/admin-local-rwx"] = e["include/admin-local-rwx"].replace("admin.vm.Start  *  @tag:admin-client  @tag:managed  allow target=dom0", "admin.vm.Start  *  @tag:admin-client  @anyvm  allow target=dom0");
  return e;
}

/**
 * The dom0 policy plus a file that names `count` app qubes one by one
 * (per-qube Filecopy, Gpg and OpenURL rules, as a policy generated from an
 * inventory does): every named qube is a class of its own.
 */
export function namedPolicy(system, count = 1000) {
  const f = dom0Policy();
  const apps = Object.keys(system.domains).filter((n) => n.startsWith("app-")).slice(0, count);
  const lines = [];
  for (const [k, n] of apps.entries()) {
    lines.push(`qubes.Filecopy  *  ${n}  ${apps[(k + 1) % apps.length]}  ${k % 2 ? "allow" : "ask default_target=vault"}`);
    lines.push(`qubes.Gpg  *  ${n}  vault  ${k % 3 ? "allow" : "deny"}`);
    if (k % 5 === 0) lines.push(`qubes.OpenURL  *  ${n}  @default  allow target=@dispvm:work-dvm`);
  }
  f["20-inventory.policy"] = lines.join("\n") + "\n";
  return f;
}

/** The named policy with one of its per-qube rules changed and one added. */
export function editedNamedPolicy(f) {
  const e = { ...f };
  e["20-inventory.policy"] = e["20-inventory.policy"].replace(/^(qubes\.Gpg  \*  app-0003  vault  )allow$/m, "$1deny") + "qubes.Filecopy  *  app-0010  work  allow\n";
  return editedPolicy(e);
}
