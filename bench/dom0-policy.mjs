/**
 * A realistic dom0 policy.d for the benchmarks (bench/diff.mjs, bench/flow.mjs): the
 * distribution's defaults for about 60 services, the GUI and admin rules, and a user file
 * naming 40 qubes, as a map from file name (relative to policy.d) to text.
 */
export const SERVICES = [
  "qubes.Filecopy", "qubes.ClipboardPaste", "qubes.OpenInVM", "qubes.OpenURL", "qubes.VMShell", "qubes.VMRootShell", "qubes.VMExec", "qubes.VMExecGUI",
  "qubes.StartApp", "qubes.Gpg", "qubes.Gpg2", "qubes.GetDate", "qubes.GetRandomizedTime", "qubes.UpdatesProxy", "qubes.InputMouse", "qubes.InputKeyboard",
  "qubes.InputTablet", "qubes.USB", "qubes.USBAttach", "qubes.PdfConvert", "qubes.GetImageRGBA", "qubes.SetDateTime", "qubes.ConnectTCP", "qubes.WindowIconUpdater",
  "qubes.NotifyTools", "qubes.NotifyUpdates", "qubes.SyncAppMenus", "qubes.ReceiveUpdates", "qubes.FeaturesRequest", "qubes.Backup", "qubes.RestoreById",
  "qubes.SelectFile", "qubes.SelectDirectory", "qubes.AuthorizedKeys", "qubes.SshAgent", "qubes.PassIO", "qubes.SplitBrowser", "qubes.Print", "qubes.SuspendPre", "qubes.SuspendPost",
];
export const ADMIN = ["admin.vm.List", "admin.vm.property.Get", "admin.vm.property.GetAll", "admin.vm.property.Set", "admin.vm.feature.Get", "admin.vm.feature.Set", "admin.vm.tag.List", "admin.vm.tag.Set",
  "admin.vm.Start", "admin.vm.Shutdown", "admin.vm.Kill", "admin.vm.CreateDisposable", "admin.vm.device.pci.List", "admin.vm.device.usb.Attach", "admin.vm.volume.List", "admin.vm.volume.Info",
  "admin.label.List", "admin.label.Get", "admin.pool.List", "admin.property.Get", "admin.Events", "admin.vm.Console", "admin.vm.firewall.Get", "admin.vm.firewall.Set"];

export function realisticPolicy() {
  const f = {};
  const dist = [];
  for (const s of SERVICES) {
    if (s === "qubes.Filecopy" || s === "qubes.OpenInVM" || s === "qubes.OpenURL" || s === "qubes.PdfConvert" || s === "qubes.GetImageRGBA") {
      dist.push(`${s}  *  @anyvm  @dispvm  allow`, `${s}  *  @anyvm  @anyvm  ask`);
    } else if (s.startsWith("qubes.Input")) {
      dist.push(`${s}  *  sys-usb  @adminvm  ask default_target=@adminvm`, `${s}  *  @anyvm  @anyvm  deny`);
    } else if (s === "qubes.UpdatesProxy") {
      dist.push(`${s}  *  @tag:whonix-updatevm  @default  allow target=sys-whonix`, `${s}  *  @tag:whonix-updatevm  @anyvm  deny`, `${s}  *  @type:TemplateVM  @default  allow target=sys-net`, `${s}  *  @anyvm  @anyvm  deny`);
    } else if (s === "qubes.GetDate" || s === "qubes.GetRandomizedTime" || s === "qubes.NotifyTools" || s === "qubes.NotifyUpdates" || s === "qubes.SyncAppMenus" || s === "qubes.FeaturesRequest") {
      dist.push(`${s}  *  @anyvm  dom0  allow`, `${s}  *  @anyvm  @adminvm  allow`);
    } else if (s === "qubes.VMShell" || s === "qubes.VMRootShell" || s === "qubes.VMExec" || s === "qubes.VMExecGUI") {
      dist.push(`${s}  *  @tag:created-by-sys-gui  @tag:guivm-sys-gui  allow autostart=no`, `${s}  *  dom0  @anyvm  allow`, `${s}  *  @anyvm  @anyvm  deny`);
    } else dist.push(`${s}  *  @anyvm  @anyvm  ask`);
  }
  dist.push("qubes.USB  +sys-usb  @anyvm  sys-usb  ask default_target=sys-usb", "qubes.StartApp  +firefox  @anyvm  @dispvm  allow", "qubes.StartApp  +xterm  @anyvm  @dispvm:offline-dvm  allow");
  f["50-config-distribution.policy"] = dist.join("\n") + "\n";
  const admin = [];
  for (const m of ADMIN) admin.push(`${m}  *  @tag:admin-client  @adminvm  allow target=dom0`, `${m}  *  @tag:admin-client  @tag:managed  allow target=dom0`, `${m}  *  sys-gui  @tag:guivm-sys-gui  allow target=dom0`);
  f["include/admin-local-rwx"] = admin.join("\n") + "\n";
  f["45-admin.policy"] = "!include include/admin-local-rwx\n";
  const user = [];
  const named = ["work", "personal", "untrusted", "vault", "sys-gpg", "sys-pdf", "sys-print", "sys-vpn"];
  for (let i = 0; i < 32; i++) named.push(`app-${String(i * 7).padStart(3, "0")}`);
  for (const [k, n] of named.entries()) {
    user.push(`qubes.Filecopy  *  ${n}  vault  ${k % 3 ? "deny notify=no" : "ask default_target=vault"}`);
    user.push(`qubes.ClipboardPaste  *  ${n}  @tag:${k % 2 ? "work" : "personal"}  ${k % 4 ? "ask" : "allow"}`);
    user.push(`qubes.Gpg  *  ${n}  vault  ${k % 2 ? "allow" : "ask default_target=vault"}`);
  }
  user.push("qubes.Filecopy  *  @tag:untrusted  @tag:work  deny", "qubes.Gpg  *  @tag:gpg-client  @tag:gpg-server  allow", "qubes.Gpg  *  @anyvm  @anyvm  deny");
  user.push("qubes.OpenURL  *  @tag:work  @default  allow target=@dispvm:work-dvm", "qubes.OpenURL  *  @tag:untrusted  @default  allow target=@dispvm:whonix-workstation-17-dvm");
  f["30-user.policy"] = user.join("\n") + "\n";
  f["90-default.policy"] = "*  *  @anyvm  @anyvm  deny\n*  *  @adminvm  @anyvm  deny\n";
  return f;
}
