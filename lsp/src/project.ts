/**
 * The server's workspace model: a policy directory on disk (plus optional
 * runtime and legacy folders) is one policy. It is mapped onto the engine's
 * standard paths (`/etc/qubes/policy.d` …) so that includes resolve exactly
 * as the daemon resolves them, and open documents overlay the disk.
 */
import {
  analyzeWorkspaceSteps,
  LEGACY_POLICY_DIR,
  normalizePath,
  parseDocument,
  POLICY_DIR,
  RUNTIME_POLICY_DIR,
  type AnalysisConfig,
  type FileKind,
  type PolicyDocument,
  type PolicyFileSystem,
  type PolicySnapshot,
  type SyntaxKind,
  type SystemInfo,
} from "@qubes-kit/language";
import type { HostFileSystem } from "./host.js";

/** Open documents by disk path. */
export interface DocumentOverlay {
  get(diskPath: string): { text: string; version: number } | undefined;
  paths(): string[];
}

export { normalizePath } from "@qubes-kit/language";

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

function baseOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

interface Mount {
  virtual: string;
  disk: string | null;
}

const STANDARD_DIRS = [POLICY_DIR, RUNTIME_POLICY_DIR, LEGACY_POLICY_DIR];
const SUFFIX = "/etc/qubes/policy.d";

/** Options of a {@link PolicyProject}. */
export interface ProjectOptions {
  runtimeDir?: string | undefined;
  legacyDir?: string | undefined;
}

/** One policy: a disk folder mapped to `/etc/qubes/policy.d`, with its analysis. */
export class PolicyProject {
  /** The policy directory on disk. */
  readonly root: string;
  private readonly mounts: Mount[];
  /** A disk folder that stands for `/` (when the workspace mirrors `etc/qubes/policy.d`). */
  private readonly fakeRoot: string | null;
  readonly fs: PolicyFileSystem;
  private cached: PolicySnapshot | undefined;
  private dirty = true;
  private parsed = new Map<string, { version: number; text: string; doc: PolicyDocument }>();
  /** The analysis in progress, run in slices by the server (see {@link step}). */
  private job: { steps: Generator<void, PolicySnapshot, void>; versions: Map<string, number>; stepped: number } | undefined;
  private cachedVersions: ReadonlyMap<string, number> = new Map();
  system: SystemInfo | null = null;
  analysis: AnalysisConfig = {};

  constructor(root: string, private readonly host: HostFileSystem, private readonly overlay: DocumentOverlay, options: ProjectOptions = {}) {
    this.root = normalizePath(root);
    if (this.root === POLICY_DIR) {
      this.fakeRoot = null;
      this.mounts = [];
    } else if (this.root.endsWith(SUFFIX)) {
      this.fakeRoot = this.root.slice(0, -SUFFIX.length) || null;
      this.mounts = [];
    } else {
      this.fakeRoot = null;
      this.mounts = [
        { virtual: POLICY_DIR, disk: this.root },
        { virtual: RUNTIME_POLICY_DIR, disk: options.runtimeDir ? normalizePath(options.runtimeDir) : null },
        { virtual: LEGACY_POLICY_DIR, disk: options.legacyDir ? normalizePath(options.legacyDir) : null },
      ];
    }
    const self = this;
    this.fs = {
      stat(p) {
        return self.stat(normalizePath(p));
      },
      readDir(p) {
        return self.readDir(normalizePath(p));
      },
      readFile(p) {
        const d = self.toDisk(normalizePath(p));
        if (d === null) return undefined;
        return self.overlay.get(d)?.text ?? self.host.readFile(d);
      },
      notUtf8(p) {
        // An open document is the editor's text: only a file read from the disk has bytes.
        const d = self.toDisk(normalizePath(p));
        if (d === null || self.overlay.get(d) !== undefined) return undefined;
        return self.host.notUtf8?.(d);
      },
    };
  }

  /** The disk path of an engine path, or `null` for a standard directory with no folder. */
  toDisk(virtual: string): string | null {
    if (this.fakeRoot !== null) return normalizePath(this.fakeRoot + virtual);
    for (const m of this.mounts) {
      if (virtual === m.virtual || virtual.startsWith(m.virtual + "/")) return m.disk === null ? null : m.disk + virtual.slice(m.virtual.length);
    }
    return virtual;
  }

  /** The engine path of a disk path (identity outside the mapped folders). */
  toVirtual(disk: string): string {
    const d = normalizePath(disk);
    if (this.fakeRoot !== null) return d.startsWith(this.fakeRoot + "/") ? d.slice(this.fakeRoot.length) : d;
    for (const m of this.mounts) {
      if (m.disk !== null && (d === m.disk || d.startsWith(m.disk + "/"))) return m.virtual + d.slice(m.disk.length);
    }
    return d;
  }

  /** True when a disk path belongs to this policy's folders. */
  covers(disk: string): boolean {
    const d = normalizePath(disk);
    if (this.fakeRoot !== null) return d.startsWith(this.fakeRoot + "/");
    if (this.mounts.length === 0) return STANDARD_DIRS.some((s) => d.startsWith(s + "/"));
    return this.mounts.some((m) => m.disk !== null && d.startsWith(m.disk + "/"));
  }

  private stat(v: string): FileKind | undefined {
    const d = this.toDisk(v);
    if (d !== null) {
      if (this.overlay.get(d)) return "file";
      const k = this.host.stat(d);
      if (k) return k;
    }
    return STANDARD_DIRS.includes(v) ? "dir" : undefined;
  }

  private readDir(v: string): string[] | undefined {
    const d = this.toDisk(v);
    const names = new Set<string>(d !== null ? (this.host.readDir(d) ?? []) : []);
    if (d !== null) for (const p of this.overlay.paths()) if (dirOf(p) === d) names.add(baseOf(p));
    if (names.size === 0 && !(d !== null && this.host.stat(d) === "dir") && !STANDARD_DIRS.includes(v)) return undefined;
    return [...names];
  }

  /** Marks the analysis stale (a document or file changed). A running analysis goes on; see {@link cancel}. */
  invalidate(): void {
    this.dirty = true;
  }

  /** True while the last snapshot is stale or an analysis is running. */
  get busy(): boolean {
    return this.dirty || this.job !== undefined || !this.cached;
  }

  /** True when an analysis was started but has not done any work yet (dropping it wastes nothing). */
  get jobUnstarted(): boolean {
    return this.job !== undefined && this.job.stepped === 0;
  }

  /** Drops the running analysis; what it finished stays in the caches, and the next run starts from the files as they are then. */
  cancel(): void {
    if (!this.job) return;
    this.job = undefined;
    this.dirty = true;
  }

  private startJob(): void {
    const versions = new Map<string, number>();
    const extra = this.overlay
      .paths()
      .filter((p) => this.covers(p) || dirOf(p) === this.root)
      .map((p) => this.toVirtual(p));
    // The analysis reads each file once; the versions of the open documents it read label its diagnostics.
    const fs: PolicyFileSystem = {
      stat: (p) => this.fs.stat(p),
      readDir: (p) => this.fs.readDir(p),
      readFile: (p) => {
        const d = this.toDisk(normalizePath(p));
        const open = d === null ? undefined : this.overlay.get(d);
        if (open && d !== null) {
          versions.set(d, open.version);
          return open.text;
        }
        return this.fs.readFile(p);
      },
      notUtf8: (p) => this.fs.notUtf8?.(p),
    };
    const steps = analyzeWorkspaceSteps(fs, {
      system: this.system,
      analysis: this.analysis,
      extraDocuments: extra,
      ...(this.cached ? { previous: this.cached } : {}),
    });
    this.job = { steps, versions, stepped: 0 };
    this.dirty = false;
  }

  /**
   * Advances the analysis for about `budgetMs` (starting one when the
   * snapshot is stale). Returns the new snapshot when a run finishes.
   */
  step(budgetMs: number, clock: () => number = () => performance.now()): PolicySnapshot | undefined {
    const start = clock();
    if (!this.job) {
      if (!this.busy) return undefined;
      this.startJob();
    }
    const job = this.job!;
    for (;;) {
      job.stepped++;
      const s = job.steps.next();
      if (s.done) {
        this.job = undefined;
        this.cached = s.value;
        this.cachedVersions = job.versions;
        return s.value;
      }
      if (clock() - start >= budgetMs) return undefined;
    }
  }

  /** The current analysis, finished now (synchronously) when stale. */
  snapshot(): PolicySnapshot {
    if (!this.dirty && !this.job && this.cached) return this.cached;
    if (this.dirty) this.cancel();
    for (;;) {
      const s = this.step(Infinity);
      if (s) return s;
    }
  }

  /** The last finished analysis, even when stale (never waits), or `undefined` before the first one. */
  lastSnapshot(): PolicySnapshot | undefined {
    return this.cached;
  }

  /** The versions of the open documents (by disk path) that the last snapshot read. */
  get snapshotVersions(): ReadonlyMap<string, number> {
    return this.cachedVersions;
  }

  /** The parsed open document at a disk path (cached per version), in the syntax the policy reads it in. */
  document(disk: string, text: string, version: number): PolicyDocument {
    const hit = this.parsed.get(disk);
    if (hit && hit.version === version && hit.text === text) return hit.doc;
    const virtual = this.toVirtual(disk);
    const snap = this.lastSnapshot();
    const syntax = this.syntaxOf(disk);
    const cachedParse = snap?.parseCache.get(virtual);
    const doc = cachedParse && cachedParse.text === text && cachedParse.syntax === syntax ? cachedParse.doc : parseDocument(text, { syntax, file: virtual });
    this.parsed.set(disk, { version, text, doc });
    return doc;
  }

  /** The syntax the policy reads a disk path in, as of the last snapshot (a guess from the path before the first one). */
  syntaxOf(disk: string): SyntaxKind {
    const virtual = this.toVirtual(disk);
    const snap = this.lastSnapshot();
    if (snap) return snap.syntaxOf(virtual);
    return dirOf(virtual) === LEGACY_POLICY_DIR ? "service" : "policy";
  }

  /** Forgets the parse of a closed document. */
  forget(disk: string): void {
    this.parsed.delete(disk);
  }
}

/** Finds the policy directory a disk path belongs to. */
export function guessPolicyRoot(disk: string, host: HostFileSystem): string {
  const p = normalizePath(disk);
  // The nearest ancestor folder called policy.d.
  for (let d = dirOf(p); d !== "/"; d = dirOf(d)) {
    if (baseOf(d) === "policy.d") return d;
  }
  const dir = dirOf(p);
  if (baseOf(dir) === "include" && host.stat(dirOf(dir)) === "dir") return dirOf(dir);
  return dir;
}

/** The policy directory inside a workspace folder, if it has one. */
export function findPolicyDirIn(folder: string, host: HostFileSystem): string | undefined {
  const f = normalizePath(folder);
  if (baseOf(f) === "policy.d") return f;
  for (const c of [`${f}/policy.d`, `${f}/etc/qubes/policy.d`, `${f}/qubes/policy.d`]) if (host.stat(c) === "dir") return c;
  return undefined;
}
