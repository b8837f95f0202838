/**
 * Reference data for editors: the standard qrexec services of Qubes OS, the
 * qube tokens, the actions and their parameters, each with a one-line description.
 */
import type { ActionName, QubeTokenKind, TokenContext } from "../syntax/tree.js";

/** A qrexec service that Qubes OS ships or that its standard packages call. */
export interface ServiceInfo {
  name: string;
  /** One line: what the service does. */
  description: string;
  /** Arguments commonly used with the service (with the leading `+`). */
  arguments?: string[];
}

/** The standard qrexec services, with one-line descriptions. */
export const STANDARD_SERVICES: readonly ServiceInfo[] = [
  { name: "qubes.Filecopy", description: "copy files to another qube (qvm-copy)" },
  { name: "qubes.ClipboardPaste", description: "paste the global clipboard into a qube" },
  { name: "qubes.ClipboardCopy", description: "copy a qube's clipboard into the global clipboard" },
  { name: "qubes.OpenInVM", description: "open a file in another (usually disposable) qube" },
  { name: "qubes.OpenURL", description: "open a URL in another (usually disposable) qube" },
  { name: "qubes.StartApp", description: "start an application in a qube; the argument names the .desktop entry", arguments: ["+firefox", "+xterm"] },
  { name: "qubes.Gpg", description: "split GPG: use keys kept in another qube" },
  { name: "qubes.Gpg2", description: "split GPG 2: use keys kept in another qube" },
  { name: "qubes.GpgImportKey", description: "split GPG: import a public key into the key qube" },
  { name: "qubes.GetDate", description: "read the current date and time from dom0 or a clock qube" },
  { name: "qubes.VMShell", description: "run an arbitrary shell command in the target qube" },
  { name: "qubes.VMRootShell", description: "run an arbitrary shell command as root in the target qube" },
  { name: "qubes.VMExec", description: "run a command given in the argument in the target qube" },
  { name: "qubes.VMExecGUI", description: "run a graphical command given in the argument in the target qube" },
  { name: "qubes.UpdatesProxy", description: "reach the updates proxy (usually sys-net or sys-whonix)" },
  { name: "qubes.ConnectTCP", description: "forward a TCP connection to the target qube; the argument is `+HOST+PORT`" },
  { name: "qubes.GetImageRGBA", description: "fetch an icon or image from a qube" },
  { name: "qubes.GetRandomizedTime", description: "read a randomised time (Whonix)" },
  { name: "qubes.InputMouse", description: "pass mouse input from a USB qube to dom0" },
  { name: "qubes.InputKeyboard", description: "pass keyboard input from a USB qube to dom0" },
  { name: "qubes.InputTablet", description: "pass tablet input from a USB qube to dom0" },
  { name: "qubes.NotifyTools", description: "a qube reports its installed tools to dom0" },
  { name: "qubes.NotifyUpdates", description: "a qube reports available updates to dom0" },
  { name: "qubes.FeaturesRequest", description: "a qube asks dom0 to set qube features" },
  { name: "qubes.PdfConvert", description: "convert an untrusted PDF in a disposable qube" },
  { name: "qubes.SelectFile", description: "show a file chooser in another qube" },
  { name: "qubes.SelectDirectory", description: "show a directory chooser in another qube" },
  { name: "qubes.SyncAppMenus", description: "send a template's application menu entries to dom0" },
  { name: "qubes.SuspendPre", description: "prepare a qube for host suspend" },
  { name: "qubes.SuspendPost", description: "resume a qube after host suspend" },
  { name: "qubes.WaitForSession", description: "wait until the qube's GUI session has started" },
  { name: "qubes.ReceiveUpdates", description: "hand downloaded dom0 updates to dom0" },
  { name: "qubes.Backup", description: "write a backup to a qube" },
  { name: "qubes.Restore", description: "read a backup from a qube" },
  { name: "qubes.USB", description: "attach a USB device from a USB qube to another qube" },
  { name: "qubes.USBAttach", description: "attach a USB device (agent side)" },
  { name: "qubes.USBDetach", description: "detach a USB device (agent side)" },
  { name: "qubes.AuthorizedKeys", description: "fetch SSH authorized keys from another qube" },
  { name: "qubes.Notifications", description: "forward desktop notifications to the GUI qube" },
  { name: "qubes.ShowInTerminal", description: "run a command in a terminal of the target qube" },
  { name: "qubes.WindowIconUpdater", description: "send window icons from a qube to the GUI domain" },
  { name: "policy.Ask", description: "ask the user in the GUI qube (used by the qrexec policy daemon)" },
  { name: "policy.Notify", description: "notify the user in the GUI qube (used by the qrexec policy daemon)" },
  { name: "policy.RegisterArgument", description: "register an argument for a service from a qube" },
  { name: "u2f.Authenticate", description: "split U2F: authenticate with a key in another qube" },
  { name: "u2f.Register", description: "split U2F: register a key in another qube" },
  { name: "admin.Events", description: "Admin API: stream qubesd events" },
  { name: "admin.vm.List", description: "Admin API: list qubes with their class and state" },
  { name: "admin.vm.Create.AppVM", description: "Admin API: create an AppVM" },
  { name: "admin.vm.CreateDisposable", description: "Admin API: create a disposable qube" },
  { name: "admin.vm.Start", description: "Admin API: start a qube" },
  { name: "admin.vm.Shutdown", description: "Admin API: shut a qube down" },
  { name: "admin.vm.Kill", description: "Admin API: kill a qube" },
  { name: "admin.vm.Pause", description: "Admin API: pause a qube" },
  { name: "admin.vm.Unpause", description: "Admin API: unpause a qube" },
  { name: "admin.vm.Remove", description: "Admin API: remove a qube" },
  { name: "admin.vm.CurrentState", description: "Admin API: read a qube's power state" },
  { name: "admin.vm.property.Get", description: "Admin API: read a qube property" },
  { name: "admin.vm.property.GetAll", description: "Admin API: read all properties of a qube" },
  { name: "admin.vm.property.Set", description: "Admin API: set a qube property" },
  { name: "admin.vm.property.List", description: "Admin API: list a qube's properties" },
  { name: "admin.vm.feature.Get", description: "Admin API: read a qube feature" },
  { name: "admin.vm.feature.Set", description: "Admin API: set a qube feature" },
  { name: "admin.vm.tag.List", description: "Admin API: list a qube's tags" },
  { name: "admin.vm.tag.Set", description: "Admin API: add a tag to a qube" },
  { name: "admin.vm.tag.Remove", description: "Admin API: remove a tag from a qube" },
  { name: "admin.vm.volume.List", description: "Admin API: list a qube's volumes" },
  { name: "admin.vm.volume.Info", description: "Admin API: describe a volume" },
  { name: "admin.vm.device.pci.Attach", description: "Admin API: attach a PCI device" },
  { name: "admin.vm.device.block.Attach", description: "Admin API: attach a block device" },
  { name: "admin.vm.firewall.Get", description: "Admin API: read a qube's firewall rules" },
  { name: "admin.vm.firewall.Set", description: "Admin API: replace a qube's firewall rules" },
  { name: "admin.vm.Console", description: "Admin API: open a qube's serial console" },
  { name: "admin.property.Get", description: "Admin API: read a global property" },
  { name: "admin.property.Set", description: "Admin API: set a global property" },
  { name: "admin.label.List", description: "Admin API: list labels" },
  { name: "admin.pool.List", description: "Admin API: list storage pools" },
  { name: "admin.backup.Execute", description: "Admin API: run a backup profile" },
  { name: "admin.vmclass.List", description: "Admin API: list qube classes" },
  { name: "admin.deviceclass.List", description: "Admin API: list device classes" },
  { name: "policy.List", description: "policy admin API: list policy files" },
  { name: "policy.Get", description: "policy admin API: read a policy file" },
  { name: "policy.Replace", description: "policy admin API: replace a policy file" },
  { name: "policy.Remove", description: "policy admin API: remove a policy file" },
  { name: "policy.include.List", description: "policy admin API: list include files" },
  { name: "policy.include.Get", description: "policy admin API: read an include file" },
  { name: "policy.include.Replace", description: "policy admin API: replace an include file" },
  { name: "policy.include.Remove", description: "policy admin API: remove an include file" },
  { name: "policy.GetFiles", description: "policy admin API: list the files that make up a service's policy" },
];

const SERVICE_INDEX = new Map(STANDARD_SERVICES.map((s) => [s.name, s]));

/** Looks up a standard service, or a generic description for `admin.*` families. */
export function serviceInfo(name: string): ServiceInfo | undefined {
  const s = SERVICE_INDEX.get(name);
  if (s) return s;
  if (name.startsWith("admin.")) return { name, description: "Admin API call (qubesd)" };
  return undefined;
}

/** The qube types (qubesd class names) Qubes OS knows. */
export const STANDARD_TYPES: readonly string[] = [
  "AdminVM",
  "AppVM",
  "DispVM",
  "RemoteVM",
  "StandaloneVM",
  "TemplateVM",
];

/** One keyword or prefix of a qube token, with the contexts it is valid in. */
export interface TokenInfo {
  /** The keyword, or the prefix for parameterised tokens (`@tag:`). */
  text: string;
  kind: QubeTokenKind;
  contexts: readonly TokenContext[];
  /** One line: what it matches. */
  description: string;
  /** True for a prefix that needs a value (`@tag:` …). */
  prefix: boolean;
}

/** Every qube token keyword or prefix, with the contexts of the spec's token table. */
export const TOKENS: readonly TokenInfo[] = [
  { text: "*", kind: "wildcard", prefix: false, contexts: ["source", "target"], description: "any qube, dom0 included, and any target keyword" },
  { text: "@anyvm", kind: "anyvm", prefix: false, contexts: ["source", "target"], description: "any qube except dom0 (as a target it also matches `@default` and `@dispvm` requests)" },
  { text: "@adminvm", kind: "adminvm", prefix: false, contexts: ["source", "target", "redirect", "intendedtarget"], description: "dom0, the admin qube" },
  { text: "@default", kind: "default", prefix: false, contexts: ["target", "intendedtarget"], description: "the caller named no target (or one that does not exist)" },
  { text: "@dispvm", kind: "dispvm", prefix: false, contexts: ["target", "redirect", "intendedtarget"], description: "a new disposable qube from the source's default disposable template" },
  { text: "@type:", kind: "type", prefix: true, contexts: ["source", "target"], description: "any qube of the given type (class), e.g. `@type:AppVM`" },
  { text: "@tag:", kind: "tag", prefix: true, contexts: ["source", "target"], description: "any qube carrying the given tag" },
  { text: "@dispvm:", kind: "dispvm-template", prefix: true, contexts: ["target", "redirect", "intendedtarget"], description: "a new disposable qube based on the given disposable template" },
  { text: "@dispvm:@tag:", kind: "dispvm-tag", prefix: true, contexts: ["target"], description: "a new disposable qube based on any disposable template carrying the given tag" },
];

/** What each action does. */
export const ACTIONS: Readonly<Record<ActionName, string>> = {
  allow: "run the call without asking (optionally redirected with `target=`)",
  deny: "refuse the call (with a notification unless `notify=no`)",
  ask: "ask the user to confirm and choose a target",
};

/** One action parameter. */
export interface ParamInfo {
  key: string;
  description: string;
  /** The actions that accept it. */
  actions: readonly ActionName[];
  /** The fixed values it takes, if any. */
  values?: readonly string[];
}

/** The action parameters of the spec's §7 table. */
export const PARAMS: readonly ParamInfo[] = [
  { key: "target", actions: ["allow", "ask"], description: "redirect the call to this qube, whatever the caller asked for (ask: offer only this qube)" },
  { key: "default_target", actions: ["ask"], description: "the qube selected by default in the ask dialog" },
  { key: "user", actions: ["allow", "ask"], description: "the user the service runs as in the target (default: the qube's default user)" },
  { key: "notify", actions: ["allow", "deny", "ask"], values: ["yes", "no"], description: "show a notification (default: yes for deny, no otherwise)" },
  { key: "autostart", actions: ["allow", "ask"], values: ["yes", "no"], description: "start the target if it is not running (default: yes)" },
];

/** The parameters an action accepts. */
export function paramsFor(action: ActionName): ParamInfo[] {
  return PARAMS.filter((p) => p.actions.includes(action));
}

/** The directives, with their parameters. */
export const DIRECTIVES: ReadonlyArray<{ name: string; params: string; description: string }> = [
  { name: "!include", params: "PATH", description: "load another policy file here (relative paths resolve against the policy directory)" },
  { name: "!include-dir", params: "DIR", description: "load every `*.policy` file of a directory here, in name order" },
  { name: "!include-service", params: "SERVICE ARGUMENT PATH", description: "load a file in legacy R4.0 syntax, for one service and argument" },
  { name: "!compat-4.0", params: "", description: "load the legacy R4.0 files of /etc/qubes-rpc/policy here (transitional)" },
];
