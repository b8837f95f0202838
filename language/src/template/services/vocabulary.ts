/**
 * The words of the stack format the editor offers and explains: keys at each
 * level (with one-line documentation), and the known feature and service
 * names of Qubes OS. Property keys come from the property table
 * (`qubes/properties.ts`), not from here.
 */

/** A key with its documentation. */
export interface KeyDoc {
  key: string;
  doc: string;
  /** What the value is, in a few words. */
  type: string;
}

const k = (key: string, type: string, doc: string): KeyDoc => ({ key, type, doc });

/** Top-level keys of a stack file. */
export const TOP_KEYS: readonly KeyDoc[] = [
  k("qkit", "1", "Format version of the stack file (always `1`)."),
  k("stack", "name", "The stack id: the owner recorded on every qube and policy file it manages."),
  k("bundle", "name", "Makes this file a reusable bundle (instantiated with `use:`) instead of a stack."),
  k("description", "string", "Free text describing the bundle."),
  k("params", "mapping", "Typed parameters of a bundle (`name`, `qube`, `tag`, `label`, `string`, `int`, `bool`, `list<qube>`)."),
  k("include", "list of paths", "More fragments of this stack (same schema, no parameters)."),
  k("use", "list", "Bundle instances: `bundle:` (path), `as:` (instance id), `with:` (parameters)."),
  k("global", "mapping", "Global properties (`admin.property.Set` / `Reset`)."),
  k("labels", "mapping", "Custom labels: name → `0xRRGGBB`."),
  k("qubes", "mapping", "The qubes of the stack: name → declaration; each qube is declared in exactly one place."),
  k("policy", "list", "Generated qrexec policy files: `{file, priority, rules}`."),
  k("expect", "list", "What-if assertions: calls with the decision they must get."),
  k("options", "mapping", "`prune`, `restart`, `policy_priority`, `adopt`."),
];

/** Keys of a qube that are not properties of its class. */
export const QUBE_KEYS: readonly KeyDoc[] = [
  k("class", "AppVM | TemplateVM | StandaloneVM | DispVM", "The qube's class (required to create it; never changed in place)."),
  k("source", "{clone | install | empty}", "TemplateVM/StandaloneVM: where it comes from at creation (`clone: QUBE`, `install: TEMPLATE`, `empty: true`)."),
  k("moved_from", "qube", "The qube's former name (a rename): the plan clones that qube under this name (volumes, settings, features, tags, firewall, notes, devices), moves the stack's users over and removes it; once moved, nothing."),
  k("features", "mapping", "Features (`admin.vm.feature.*`); values are stored as strings: `true` → `\"1\"`, `false` → `\"\"`, `null` removes."),
  k("services", "mapping", "Shorthand for `service.NAME` features: `true` enables, `false` disables, `null` removes."),
  k("tags", "list", "Managed tags (a set); tags qubesd adds on its own (`created-by-*`, `guivm-*`, `audiovm-*`) are never touched."),
  k("firewall", "list of rules", "Firewall rules in qubesd's `key=value` form, in order (`action=accept dsthost=… proto=tcp dstports=443`, `action=drop`)."),
  k("devices", "mapping", "Device assignments per class (`pci`, `usb`, `block`…): by `port`, `device` id or `match` selector, with `mode` and `options`."),
  k("volumes", "mapping", "Volume settings: `private: { size: 20GiB, revisions_to_keep: 1 }`."),
  k("pools", "mapping", "Create-time storage pools per volume (`private: vm-pool`)."),
  k("notes", "string", "Free text stored with the qube (`admin.vm.notes.Set`)."),
  k("state", "running | halted | any", "Power state to converge to (default `any`: not managed)."),
  k("absent", "bool", "`true`: the qube must not exist (it is removed if the stack owns it)."),
  k("protect", "bool", "`true`: never removed, never replaced."),
  k("ignore_changes", "list", "Keys set at creation, then left alone (`memory`, `features.x`, `firewall`)."),
];

export const SOURCE_KEYS: readonly KeyDoc[] = [
  k("clone", "qube", "Clone an existing qube once at creation; its content is then yours."),
  k("install", "template name", "Install a template package with `qvm-template` in dom0 (never removed by qkit)."),
  k("empty", "true", "Create an empty qube."),
];

export const DEVICE_CLASSES: readonly KeyDoc[] = [
  k("pci", "list", "PCI devices (backend `dom0`)."),
  k("usb", "list", "USB devices (backend usually `sys-usb`)."),
  k("block", "list", "Block devices."),
  k("mic", "list", "Microphone."),
];

export const DEVICE_KEYS: readonly KeyDoc[] = [
  k("port", "port id", "The device's port, e.g. `00_14.0` (PCI) or `2-1` (USB)."),
  k("device", "device id", "The device id, e.g. `0x1050:0x0407::u030000`, or `*`."),
  k("match", "{class, vendor, product}", "Selector resolved against the backend's available devices at plan time."),
  k("backend", "qube", "The qube that exposes the device (PCI: `dom0`)."),
  k("mode", "required | auto-attach | ask-to-attach", "How the device is attached (default `required`)."),
  k("options", "mapping", "Assignment options, e.g. `no-strict-reset: true`, `permissive: true`."),
];

export const MATCH_KEYS: readonly KeyDoc[] = [
  k("class", "network | usb-controller | audio | code", "Interface class, or an interface code such as `p0c03**`."),
  k("vendor", "string", "Vendor name or id."),
  k("product", "string", "Product name or id."),
];

export const VOLUME_NAMES: readonly KeyDoc[] = [
  k("private", "mapping", "The private volume (`/rw`, home)."),
  k("root", "mapping", "The root volume (TemplateVM and StandaloneVM)."),
  k("volatile", "mapping", "The volatile volume (swap, temporary root changes)."),
  k("kernel", "mapping", "The kernel volume."),
];

export const VOLUME_KEYS: readonly KeyDoc[] = [
  k("size", "size", "Size in bytes, or with a unit (`20GiB`, `512MiB`); volumes only grow."),
  k("revisions_to_keep", "int", "How many old revisions the pool keeps."),
  k("ephemeral", "bool", "Encrypt the volume with an ephemeral key (volatile)."),
  k("rw", "bool", "Whether the volume is writable."),
];

export const USE_KEYS: readonly KeyDoc[] = [
  k("bundle", "path", "The bundle file (relative to this file)."),
  k("as", "name", "The instance id; names its policy file."),
  k("with", "mapping", "Values of the bundle's parameters."),
];

export const POLICY_KEYS: readonly KeyDoc[] = [
  k("file", "name", "The policy file's name: `/etc/qubes/policy.d/<priority>-qkit-<stack>-<file>.policy`."),
  k("priority", "int", "The file's number (default `options.policy_priority`, 40: after `30-user.policy`, before `50-config-*`)."),
  k("rules", "policy text", "The qrexec policy of the file (a `|` block)."),
  k("include_file", "name", "Write an include file (`policy.d/include/<name>`) instead of a numbered file."),
];

export const EXPECT_KEYS: readonly KeyDoc[] = [
  k("call", "SERVICE[+ARG] SOURCE -> TARGET", "The qrexec call, e.g. `qubes.Filecopy work -> vault`."),
  k("decision", "allow | ask | deny", "The decision the call must get once the stack is applied."),
  k("target", "qube", "allow: the resolved target; ask: the default target."),
  k("targets_include", "list", "ask: targets that must all be offered."),
  k("targets_exact", "list", "ask: the exact set of targets offered."),
  k("name", "text", "A name for people (reports show it); as in a policy test file."),
];

export const OPTION_KEYS: readonly KeyDoc[] = [
  k("prune", "bool", "Remove qubes the stack owns but no longer declares (default false)."),
  k("restart", "never | if-needed", "Whether apply may restart running qubes for changes that need it (default never)."),
  k("policy_priority", "int", "Default priority of the generated policy files (default 40)."),
  k("adopt", "bool", "Take over existing qubes that no stack owns yet (default false)."),
];

export const PARAM_KEYS: readonly KeyDoc[] = [
  k("type", "name | qube | tag | label | string | int | bool | list<qube>", "The parameter's type."),
  k("default", "value", "The value when the instance gives none."),
  k("description", "string", "What the parameter is for."),
];

export const PARAM_TYPES = ["name", "qube", "tag", "label", "string", "int", "bool", "list<qube>"] as const;
export const STATES = ["running", "halted", "any"] as const;
export const DEVICE_MODES = ["required", "auto-attach", "ask-to-attach"] as const;
export const MATCH_CLASSES = ["network", "usb-controller", "audio"] as const;
export const DECISIONS = ["allow", "ask", "deny"] as const;
export const RESTART_MODES = ["never", "if-needed"] as const;
export const VIRT_MODES = ["hvm", "pv", "pvh"] as const;

/** Features Qubes OS components read, with what they do. */
export const KNOWN_FEATURES: readonly KeyDoc[] = [
  k("servicevm", "bool", "A service qube (no application menu entries by default; hidden in some tools)."),
  k("appmenus-dispvm", "bool", "Application menu entries of a disposable template start disposables."),
  k("preload-dispvm-max", "int", "How many disposables of this template are kept preloaded."),
  k("menu-items", "string", "Application menu entries (space-separated desktop file names)."),
  k("default-menu-items", "string", "Menu entries new qubes based on this template get."),
  k("netvm-menu-items", "string", "Menu entries shown for a network qube."),
  k("internal", "bool", "An internal qube: hidden from menus and most tools."),
  k("gui", "bool", "Whether the qube has a GUI (graphical agent)."),
  k("gui-emulated", "bool", "Use the emulated (VGA) display instead of the GUI agent."),
  k("qrexec", "bool", "The qube runs the qrexec agent."),
  k("no-monitor-layout", "bool", "Do not send monitor layout to the qube."),
  k("rpc-clipboard", "bool", "Use the qrexec-based clipboard."),
  k("ipv6", "bool", "Enable IPv6 for this qube (on a network provider: for its clients)."),
  k("video-model", "string", "The emulated video card (HVM), e.g. `none`."),
  k("audio-model", "string", "The emulated audio card (HVM)."),
  k("stubdom-qrexec", "bool", "qrexec in the stub domain (HVM)."),
  k("linux-stubdom", "bool", "Use the Linux stub domain (HVM)."),
  k("uefi", "bool", "Boot the HVM with UEFI firmware."),
  k("prohibit-start", "string", "Refuse to start the qube (the value says why)."),
  k("skip-update", "bool", "Exclude the qube from `qubes-vm-update`."),
  k("os", "string", "The qube's operating system (`Linux`, `Windows`); set by the template."),
  k("os-distribution", "string", "The distribution (`debian`, `fedora`); set by the template."),
  k("template-name", "string", "The template package's name; set at install."),
  k("net.fake-ip", "ip", "The IP address the qube sees for itself."),
  k("net.fake-gateway", "ip", "The gateway the qube sees."),
  k("net.fake-netmask", "netmask", "The netmask the qube sees."),
  k("updates-available", "bool", "Set by the update check inside the qube."),
];

/** qvm-service names (features `service.NAME`). */
export const KNOWN_SERVICES: readonly KeyDoc[] = [
  k("clocksync", "bool", "Synchronise the clock (set on `clockvm` by qubesd)."),
  k("crond", "bool", "Run cron."),
  k("cups", "bool", "Run the CUPS printing service."),
  k("network-manager", "bool", "Run NetworkManager (network qubes)."),
  k("qubes-firewall", "bool", "Enforce the firewall of downstream qubes (network providers)."),
  k("qubes-network", "bool", "Provide network to connected qubes (NAT)."),
  k("qubes-update-check", "bool", "Check for updates inside the qube."),
  k("qubes-updates-proxy", "bool", "Run the updates proxy for templates."),
  k("meminfo-writer", "bool", "Report memory use to the memory balancer. qubesd turns this service into `maxmem` and deletes it: set `maxmem` instead (0 disables balancing)."),
  k("minimal-netvm", "bool", "Minimal network qube (only what networking needs)."),
  k("minimal-usbvm", "bool", "Minimal USB qube (only what USB needs)."),
  k("disable-default-route", "bool", "Do not set a default route."),
  k("disable-dns-server", "bool", "Do not set DNS servers."),
  k("ntpd", "bool", "Run an NTP daemon."),
  k("split-gpg2-client", "bool", "Use split-gpg2 (the client side)."),
  k("guivm", "bool", "Act as a GUI qube."),
  k("audiovm", "bool", "Act as an audio qube."),
  k("software-rendering", "bool", "Force software rendering in the qube."),
  k("apparmor", "bool", "Enable AppArmor (kernel parameter)."),
  k("lightdm", "bool", "Run a display manager (GUI qubes)."),
  k("qubes-yum-proxy", "bool", "The old name of `qubes-updates-proxy`."),
];
