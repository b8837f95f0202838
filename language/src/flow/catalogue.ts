/**
 * The direction of data of qrexec services: which way a call moves data
 * between its caller (the policy's source) and the qube it runs in (the
 * target). Written from the Qubes documentation of each service; a service
 * the catalogue does not know moves data both ways (configurable).
 *
 * A catalogue file, one entry a line, `#` starts a comment:
 *
 *     qubes.Filecopy      forward   files go from the caller to the target
 *     my.Backup*          backward
 *     *                   both      (the default for unknown services)
 *
 * Directions: `forward` (caller → target), `backward` (target → caller),
 * `both`, `none`; `control` is `both`, and marks services that let the caller
 * run or manage things in the target. A pattern may end in `*` (a prefix).
 * Entries of a file come before the built-in ones; the first match wins.
 */

/** Which way a service moves data. */
export type FlowDirection = "forward" | "backward" | "both" | "none";

/** One entry of the catalogue. */
export interface ServiceFlow {
  /** A service name, or a prefix ending in `*` (`admin.vm.property.*`); `*` alone is the default. */
  pattern: string;
  direction: FlowDirection;
  /** The caller runs or manages something in the target (Admin API, shells, app starts). */
  control: boolean;
  /** Why, in a few words (shown as evidence). */
  note: string;
  /** Where the entry comes from: `built-in`, or `FILE:LINE`. */
  origin: string;
}

/** A problem in a catalogue file. */
export interface CatalogueDiagnostic {
  code: "flow-catalogue-syntax" | "flow-catalogue-direction";
  line: number;
  message: string;
}

/** A catalogue: entries in first-match order. */
export interface ServiceCatalogue {
  entries: ServiceFlow[];
}

const B = (pattern: string, direction: FlowDirection, note: string, control = false): ServiceFlow => ({ pattern, direction, control, note, origin: "built-in" });

/**
 * The built-in entries, from the Qubes documentation (qrexec services of
 * core-agent-linux, core-admin and the GUI/input proxies). Order matters:
 * more specific patterns first.
 */
export const BUILTIN_SERVICE_FLOWS: readonly ServiceFlow[] = [
  B("qubes.Filecopy", "forward", "qvm-copy / qvm-move send files from the caller to the target"),
  B("qubes.ClipboardPaste", "forward", "the inter-qube clipboard pastes the caller's clipboard into the target"),
  // The edited file goes back to the caller (the Qfilecopy design page), but only to that caller: from a new
  // disposable (the service's main use) it holds nothing but what the caller sent and the user typed, and the
  // graph keeps one node per disposable template, so counting it would join unrelated callers. A named target
  // could hide its own data in the edit: give `qubes.OpenInVM both` in a --services file to count that.
  B("qubes.OpenInVM", "forward", "qvm-open-in-vm sends a file to the target and opens it there; the edited copy comes back only to that caller"),
  B("qubes.OpenURL", "forward", "qvm-open-in-vm sends a URL to the target and opens it there"),
  B("qubes.PdfConvert", "both", "the PDF goes to the target, the rendered pages come back"),
  B("qubes.Gpg", "both", "split GPG: data to sign or decrypt goes to the target, the result comes back"),
  B("qubes.Gpg2", "both", "split GPG 2: data goes to the target, the result comes back"),
  B("qubes.GpgImportKey", "forward", "split GPG: a key is imported into the target"),
  B("qubes.SplitGpg*", "both", "split GPG: data goes to the target, the result comes back"),
  B("qubes.VMShell", "both", "a shell in the target: the caller runs anything there and reads the output", true),
  B("qubes.VMRootShell", "both", "a root shell in the target", true),
  B("qubes.VMExec", "both", "runs a command in the target and returns its output", true),
  B("qubes.VMExecGUI", "both", "runs a command in the target and returns its output", true),
  B("qubes.StartApp", "forward", "starts an application in the target (the argument chooses it)", true),
  B("qubes.ShowInTerminal", "both", "a terminal in the target connected to the caller", true),
  B("qubes.InputMouse", "forward", "mouse events from the device qube to the target"),
  B("qubes.InputKeyboard", "forward", "keyboard events from the device qube to the target"),
  B("qubes.InputTablet", "forward", "tablet events from the device qube to the target"),
  B("qubes.UpdatesProxy", "both", "HTTP traffic between the caller and the network through the target's proxy"),
  B("qubes.ConnectTCP", "both", "a TCP connection between the caller and a port of the target"),
  B("qubes.GetDate", "backward", "the target tells the caller the time"),
  B("qubes.GetRandomizedTime", "backward", "the target tells the caller a randomised time"),
  B("qubes.GetImageRGBA", "backward", "the target sends an image (icons) to the caller"),
  B("qubes.TemplateSearch", "backward", "the target lists templates for the caller"),
  B("qubes.TemplateDownload", "backward", "the target downloads a template for the caller"),
  B("qubes.NotifyUpdates", "forward", "the caller reports available updates"),
  B("qubes.NotifyTools", "forward", "the caller reports its installed tools"),
  B("qubes.FeaturesRequest", "forward", "the caller requests features"),
  B("qubes.SyncAppMenus", "forward", "the caller (a template or qube) sends its application menus to dom0, the target (the default policy: qubes.SyncAppMenus * @anyvm dom0 allow)"),
  B("qubes.WindowIconUpdater", "forward", "the caller sends window icons"),
  B("qubes.SetDateTime", "forward", "the caller sets the target's clock"),
  B("qubes.SetMonitorLayout", "forward", "the caller sends the monitor layout"),
  B("qubes.SuspendPre", "forward", "the caller tells the target a suspend is coming", true),
  B("qubes.SuspendPost", "forward", "the caller tells the target it resumed", true),
  B("qubes.USB", "both", "a USB device is forwarded between the qubes"),
  B("qubes.USBAttach", "both", "a USB device is forwarded between the qubes"),
  B("qubes.USBDetach", "none", "detaches a forwarded USB device"),
  B("qubes.Backup", "forward", "qvm-backup to a qube: dom0, the caller, writes the backup stream into the target's service, which stores it"),
  B("qubes.Restore", "backward", "qvm-backup-restore from a qube: the target's service reads the backup and sends it to dom0, the caller"),
  B("qubes.ReceiveUpdates", "forward", "the caller hands downloaded updates to the target"),
  B("qubes.WaitForSession", "none", "waits for the target's GUI session"),
  B("qubes.SelectFile", "backward", "a file chooser in the target returns a path"),
  B("qubes.SelectDirectory", "backward", "a directory chooser in the target returns a path"),
  B("qubes.AuthorizedKeys", "backward", "the target returns SSH keys"),
  B("policy.Ask", "both", "the policy daemon asks the user in the GUI qube", true),
  B("policy.Notify", "forward", "the policy daemon notifies the GUI qube"),
  B("policy.*", "both", "the policy admin API: reads and writes the qrexec policy", true),
  // The Admin API is control (issue 9: `admin.*` control), and every admin.* entry is marked so. Its calls run
  // in dom0 about the target qube. A call that changes the target (properties, features, devices, volumes,
  // start, remove) gives control over it, and control moves data both ways: the caller can write into the
  // target (a volume import, a feature the target's agent reads, a device) and read out of it (a volume
  // clone, a device it attaches to itself). A read-only call (Get, List, Info, ...) changes nothing and
  // carries only dom0's record of the target back to the caller, some of which the target itself sets
  // (features through qubes.FeaturesRequest, tools reports): data from the target to the caller.
  B("admin.vm.List", "backward", "Admin API, control (read-only): lists qubes, dom0's record of the target comes back", true),
  B("admin.Events", "backward", "Admin API, control (read-only): the event stream about the target comes back", true),
  B("admin.vm.Console", "both", "Admin API, control: the qube's console, typed into and read", true),
  B("admin.*.List", "backward", "Admin API, control (read-only): a listing of the target's records comes back", true),
  B("admin.*.Get", "backward", "Admin API, control (read-only): the target's value comes back (some set by the target itself)", true),
  B("admin.*.GetAll", "backward", "Admin API, control (read-only): the target's values come back", true),
  B("admin.*.GetDefault", "backward", "Admin API, control (read-only): a default value comes back", true),
  B("admin.*.Info", "backward", "Admin API, control (read-only): the target's record comes back", true),
  B("admin.*.Available", "backward", "Admin API, control (read-only): the target's devices are listed", true),
  B("admin.*.Assigned", "backward", "Admin API, control (read-only): the target's device assignments are listed", true),
  B("admin.*.Attached", "backward", "Admin API, control (read-only): the target's attached devices are listed", true),
  B("admin.*", "both", "Admin API, control: manages the target (creates, changes, starts, attaches, imports or clones volumes), so data moves both ways", true),
  B("*", "both", "an unknown service: data may go both ways"),
];

/** The built-in catalogue. */
export function builtinCatalogue(): ServiceCatalogue {
  return { entries: [...BUILTIN_SERVICE_FLOWS] };
}

/** Does `pattern` (a name, `*`, or a glob with `*` anywhere) match `service`? */
export function servicePatternMatches(pattern: string, service: string): boolean {
  if (!pattern.includes("*")) return pattern === service;
  const parts = pattern.split("*");
  if (!service.startsWith(parts[0]!)) return false;
  let pos = parts[0]!.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const at = service.indexOf(parts[i]!, pos);
    if (at < 0) return false;
    pos = at + parts[i]!.length;
  }
  const last = parts[parts.length - 1]!;
  return service.length - last.length >= pos && service.endsWith(last);
}

/** The entry that decides `service` (the first match; the catalogue's `*` or `both` otherwise). */
export function serviceFlow(catalogue: ServiceCatalogue, service: string): ServiceFlow {
  for (const e of catalogue.entries) if (servicePatternMatches(e.pattern, service)) return e;
  return B("*", "both", "an unknown service: data may go both ways");
}

const DIRECTIONS = new Set(["forward", "backward", "both", "none", "control"]);

/**
 * Parses a catalogue file; its entries come before `base` (default: the
 * built-in ones). Never throws: bad lines are diagnostics and are skipped.
 */
export function parseServiceCatalogue(text: string, file = "catalogue", base: ServiceCatalogue = builtinCatalogue()): { catalogue: ServiceCatalogue; diagnostics: CatalogueDiagnostic[] } {
  const entries: ServiceFlow[] = [];
  const diagnostics: CatalogueDiagnostic[] = [];
  const lines = text.split(/\r\n|\n|\r/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    const hash = raw.indexOf("#");
    const body = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (!body) return;
    const m = /^(\S+)\s+(\S+)(?:\s+(.*))?$/.exec(body);
    if (!m) {
      diagnostics.push({ code: "flow-catalogue-syntax", line, message: `${file}:${line}: expected \`SERVICE DIRECTION [NOTE]\`, got \`${body}\`` });
      return;
    }
    const [, pattern, dir, note] = m as unknown as [string, string, string, string | undefined];
    if (!DIRECTIONS.has(dir)) {
      diagnostics.push({ code: "flow-catalogue-direction", line, message: `${file}:${line}: unknown direction \`${dir}\`: use forward, backward, both, none or control` });
      return;
    }
    const control = dir === "control";
    entries.push({ pattern, direction: control ? "both" : (dir as FlowDirection), control, note: note?.trim() || `${file}:${line}`, origin: `${file}:${line}` });
  });
  return { catalogue: { entries: [...entries, ...base.entries] }, diagnostics };
}

/** Does a direction move data from the caller to the target (`forward`), or back? */
export function movesForward(d: FlowDirection): boolean {
  return d === "forward" || d === "both";
}

/** Does a direction move data from the target back to the caller? */
export function movesBackward(d: FlowDirection): boolean {
  return d === "backward" || d === "both";
}
