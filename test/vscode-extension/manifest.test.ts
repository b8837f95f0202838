/**
 * The extension's manifest (`vscode-extension/package.json`) as VS Code reads it: which files
 * are ours (qrexec policy paths only: polkit and Java `.policy` files are left alone), what the
 * extension does in an untrusted workspace, resource-scoped settings for multi-root windows,
 * the icon, and the package metadata. The real VS Code checks the Java file too
 * (`test/e2e/vscode/`).
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const dir = fileURLToPath(new URL("../../vscode-extension/", import.meta.url));
const manifest = JSON.parse(readFileSync(`${dir}package.json`, "utf8"));

interface Language {
  id: string;
  extensions?: string[];
  filenames?: string[];
  filenamePatterns?: string[];
}
const languages: Language[] = manifest.contributes.languages;
const properties: Record<string, { scope?: string; type: string }> = manifest.contributes.configuration.properties;

/**
 * VS Code's glob semantics for `filenamePatterns` that contain a `/` (matched against the
 * whole path): `**` any number of segments, `*` within one segment.
 */
function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    if (glob.startsWith("**/", i)) {
      re += "(?:.*/)?";
      i += 2;
    } else if (glob.startsWith("/**", i) && i + 3 === glob.length) {
      re += "/.*";
      i += 2;
    } else if (glob[i] === "*") re += "[^/]*";
    else if (glob[i] === "?") re += "[^/]";
    else re += glob[i]!.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** The language VS Code gives `path` from our contributions, or `undefined` (not ours). */
function languageOf(path: string): string | undefined {
  const base = path.slice(path.lastIndexOf("/") + 1);
  for (const l of languages) {
    if (l.filenames?.includes(base)) return l.id;
    if (l.extensions?.some((e) => base.endsWith(e))) return l.id;
    if (l.filenamePatterns?.some((p) => globToRegExp(p).test(path))) return l.id;
  }
  return undefined;
}

describe("file associations", () => {
  it.each([
    ["/etc/qubes/policy.d/30-user.policy", "qrexecpolicy"],
    ["/etc/qubes/policy.d/include/admin-local-ro", "qrexecpolicy"],
    ["/run/qubes/policy.d/50-config.policy", "qrexecpolicy"],
    ["/home/user/work/policy.d/sub/10-x.policy", "qrexecpolicy"],
    ["/etc/qubes-rpc/policy/qubes.Filecopy", "qrexecpolicy-service"],
    ["/etc/qubes-rpc/policy/qubes.Gpg+work", "qrexecpolicy-service"],
    ["/etc/qubes-rpc/policy/include/admin-local-rwx", "qrexecpolicy-service"],
    ["/home/user/stacks/laptop.qubes.yaml", "qubes-template"],
  ])("%s is %s", (path, id) => {
    expect(languageOf(path)).toBe(id);
  });

  it.each([
    "/usr/lib/jvm/java-17-openjdk-amd64/conf/security/java.policy",
    "/home/user/project/src/main/resources/app.policy",
    "/usr/share/polkit-1/actions/org.freedesktop.packagekit.policy",
    "/usr/share/polkit-1/actions/org.qubes-os.policykit.policy",
    "/etc/qubes/policy.d.bak/30-user.policy",
    "/home/user/notes/policy.d.txt",
  ])("%s is not ours", (path) => {
    expect(languageOf(path)).toBeUndefined();
  });

  it("claims no file by its extension alone", () => {
    for (const l of languages) expect(l.extensions?.filter((e) => e.endsWith(".policy")) ?? []).toEqual([]);
  });

  it("a .policy file is ours exactly when a folder on its path is policy.d (property)", () => {
    const word = fc.stringMatching(/^[a-z0-9._-]{1,10}$/).filter((s) => s !== "." && s !== "..");
    const segment = fc.oneof(word, fc.constantFrom("policy.d", "policy", "qubes", "etc", "policy.d.bak", "security"));
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 5 }), word, (dirs, name) => {
        // Files under a legacy `qubes-rpc/policy` folder are the legacy language whatever their name.
        fc.pre(!dirs.some((d, i) => d === "qubes-rpc" && dirs[i + 1] === "policy"));
        const path = `/${[...dirs, `${name}.policy`].join("/")}`;
        expect(languageOf(path)).toBe(dirs.includes("policy.d") ? "qrexecpolicy" : undefined);
      }),
    );
  });

  it("activates on a workspace with policy files, not on any .policy file", () => {
    expect(manifest.activationEvents).not.toContain("workspaceContains:**/*.policy");
    expect(manifest.activationEvents).toEqual(expect.arrayContaining(["workspaceContains:**/policy.d/**/*.policy", "onLanguage:qrexecpolicy"]));
  });
});

describe("workspace trust", () => {
  const trust = manifest.capabilities?.untrustedWorkspaces;

  it("is supported in a limited way, and says what is limited", () => {
    expect(trust.supported).toBe("limited");
    expect(trust.description).toMatch(/socket and qrexec/);
    expect(manifest.capabilities.virtualWorkspaces.supported).toBe(false);
  });

  it("restricts every setting that names a file, a folder, a socket or a machine connection", () => {
    const restricted = new Set<string>(trust.restrictedConfigurations);
    for (const key of restricted) expect(properties, `${key} is not a setting`).toHaveProperty([key]);
    const reads = Object.keys(properties).filter((k) => /(source|file|socket|Dir|connection)$/.test(k));
    expect(reads.length).toBeGreaterThanOrEqual(9);
    for (const key of reads) expect(restricted.has(key), `${key} is not restricted`).toBe(true);
  });

  it("hides plan and what-if from menus in an untrusted workspace", () => {
    const menus = Object.values(manifest.contributes.menus).flat() as Array<{ command: string; when?: string }>;
    const template = menus.filter((m) => m.command.startsWith("qubesTemplate."));
    expect(template.length).toBeGreaterThan(0);
    for (const m of template) expect(m.when).toMatch(/isWorkspaceTrusted/);
  });
});

describe("settings", () => {
  it("are resource-scoped (each folder of a multi-root window has its own), except the trace", () => {
    for (const [key, p] of Object.entries(properties)) {
      expect(p.scope, key).toBe(key === "qubesPolicy.trace.server" ? "window" : "resource");
    }
  });
});

describe("package metadata", () => {
  it("has a repository, a licence, an issue tracker and a home page", () => {
    expect(manifest.repository.url).toMatch(/^git\+https:\/\//);
    expect(manifest.license).toBe("MIT");
    expect(manifest.bugs.url).toMatch(/^https:\/\/.*\/issues$/);
    expect(manifest.homepage).toMatch(/^https:\/\//);
    expect(readFileSync(`${dir}LICENSE`, "utf8")).toMatch(/MIT/);
  });

  it("has a 128×128 PNG icon that the package includes", () => {
    expect(manifest.icon).toBe("icon.png");
    const png = readFileSync(`${dir}${manifest.icon}`);
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.toString("ascii", 12, 16)).toBe("IHDR");
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([128, 128]);
    expect(readFileSync(`${dir}.vscodeignore`, "utf8").split("\n")).toContain("!icon.png");
  });
});
