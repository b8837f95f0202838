/**
 * The seam between the server and the machine it runs on: a file system on
 * disk paths and a way to fetch the system model. The Node entry implements
 * it over `node:fs` and qubesd; the browser entry has only open documents.
 */
import { readSystemModelText, type FileKind, type LiveDevice, type RawSystemInfo, type Utf8Problem } from "@qubes-kit/language";
import type { QubesPolicySettings, TemplatePlanResult, TemplateWhatifResult } from "./protocol.js";
import type { TemplateRun } from "./template/machine.js";

/** Read access to the disk (absolute paths). Every method returns `undefined` for a missing path and never throws. */
export interface HostFileSystem {
  stat(path: string): FileKind | undefined;
  readDir(path: string): string[] | undefined;
  readFile(path: string): string | undefined;
  /** Where the bytes of a file read are not UTF-8 (the engine fails on it), or `undefined` (see `PolicyFileSystem.notUtf8`). */
  notUtf8?(path: string): Utf8Problem | undefined;
  /** Forgets cached contents (all, or the given paths). */
  invalidate?(paths?: readonly string[]): void;
}

/** The outcome of fetching a system model. */
export interface SystemLoadResult {
  raw: RawSystemInfo | null;
  /** Why there is no model (one line), when `raw` is `null` although a source was configured. */
  error?: string;
}

/** What the server needs from its environment. */
export interface ServerHost {
  fs: HostFileSystem;
  /** Fetches the raw system model the settings ask for (`folder`: the first workspace folder, for relative paths). */
  loadSystem(settings: QubesPolicySettings, folder: string | undefined): Promise<SystemLoadResult>;
  /** Plan and what-if of stack files against a machine (the Node host; absent in browsers). Never reject. */
  template?: {
    plan(run: TemplateRun): Promise<TemplatePlanResult>;
    whatif?(run: TemplateRun): Promise<TemplateWhatifResult>;
    /** The devices `backend` offers in a device class (`admin.vm.device.CLASS.Available`); rejects when the machine cannot be read. */
    devices?(run: TemplateRun, backend: string, devclass: string): Promise<LiveDevice[]>;
  };
}

/** A host without a disk: only open documents exist (browsers, workers, tests). */
export function createMemoryHost(files: Record<string, string> = {}): ServerHost {
  const data = new Map(Object.entries(files));
  const fs: HostFileSystem = {
    stat(path) {
      if (data.has(path)) return "file";
      const prefix = path.endsWith("/") ? path : path + "/";
      for (const k of data.keys()) if (k.startsWith(prefix)) return "dir";
      return undefined;
    },
    readDir(path) {
      const prefix = path.endsWith("/") ? path : path + "/";
      const names = new Set<string>();
      for (const k of data.keys()) if (k.startsWith(prefix)) names.add(k.slice(prefix.length).split("/")[0]!);
      return names.size ? [...names] : undefined;
    },
    readFile: (path) => data.get(path),
  };
  return {
    fs,
    async loadSystem(settings) {
      const source = settings.system?.source ?? "none";
      if (source === "none") return { raw: null };
      if (source === "file" && settings.system?.file) {
        const file = settings.system.file;
        if (fs.stat(file) === "dir") return { raw: null, error: `system model file \`${file}\` is a directory: give the file \`qkit system snapshot\` writes [system-model-is-directory]` };
        const text = data.get(file);
        if (text === undefined) return { raw: null, error: `system model file not found: ${file}` };
        // The CLI's checks and messages, shared (no content echoed).
        const r = readSystemModelText(text, file);
        return "raw" in r ? { raw: r.raw } : { raw: null, error: `${r.error.message} [${r.error.code}]` };
      }
      return { raw: null, error: `system source ${source} is not available here` };
    },
  };
}
