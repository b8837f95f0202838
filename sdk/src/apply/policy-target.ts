/**
 * Where the generated policy files are read from and written to: the policy
 * admin API (the default), or a directory (`--policy-dir DIR`, dom0 as root,
 * and tests). Both take the token read at plan time: a file changed since
 * then is a conflict ({@link PolicyAdminTokenException}), never overwritten.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { PolicyAdminFileNotFoundException, PolicyAdminTokenException, policyToken, type PolicyAdmin, type PolicyToken } from "../policy-admin.js";
import type { LivePolicyFile } from "./types.js";

/** A policy store for plan and apply. Names are policy admin API names (no `.policy`, no `include/`). */
export interface PolicyTarget {
  readonly description: string;
  /** Main file names, or include file names. */
  list(include: boolean): Promise<string[]>;
  /** The file with its token, or `undefined` when it does not exist. */
  get(name: string, include: boolean): Promise<LivePolicyFile | undefined>;
  /** Writes `text` if the file's token is still `token` (`new`: must not exist). */
  replace(name: string, include: boolean, text: string, token: string): Promise<void>;
  /** Removes the file if its token is still `token`. */
  remove(name: string, include: boolean, token: string): Promise<void>;
}

/** The policy admin API as a {@link PolicyTarget}. */
export function adminPolicyTarget(admin: PolicyAdmin): PolicyTarget {
  return {
    description: "the policy admin api",
    list: (include) => admin.list({ include }),
    async get(name, include) {
      try {
        const f = await admin.get(name, { include });
        return { name, include, text: f.text, token: f.token };
      } catch (err) {
        if (err instanceof PolicyAdminFileNotFoundException) return undefined;
        throw err;
      }
    },
    replace: (name, include, text, token) => admin.replace(name, text, token as PolicyToken, { include }),
    remove: (name, include, token) => admin.remove(name, token as PolicyToken, { include }),
  };
}

/**
 * A policy directory on disk as a {@link PolicyTarget}: `DIR/NAME.policy` and
 * `DIR/include/NAME`. Writes go to a temporary file renamed into place, after
 * the same token check the policy admin service makes (same messages).
 */
export function dirPolicyTarget(dir: string): PolicyTarget {
  const file = (name: string, include: boolean) => (include ? path.join(dir, "include", name) : path.join(dir, `${name}.policy`));
  const read = (name: string, include: boolean): string | undefined => {
    try {
      return fs.readFileSync(file(name, include), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  };
  const check = (name: string, include: boolean, token: string): string | undefined => {
    const current = read(name, include);
    if (token === "any") return current;
    if (token === "new") {
      if (current !== undefined) throw new PolicyAdminTokenException("File exists but token is 'new'", { qubesType: "PolicyAdminTokenException" });
      return current;
    }
    if (current === undefined) throw new PolicyAdminTokenException("File doesn't exist, but token isn't 'new'", { qubesType: "PolicyAdminTokenException" });
    if (policyToken(current) !== token) throw new PolicyAdminTokenException("Token mismatch", { qubesType: "PolicyAdminTokenException" });
    return current;
  };
  return {
    description: dir,
    async list(include) {
      const d = include ? path.join(dir, "include") : dir;
      let names: string[];
      try {
        names = fs.readdirSync(d);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw err;
      }
      return names
        .filter((n) => fs.statSync(path.join(d, n)).isFile())
        .filter((n) => include || n.endsWith(".policy"))
        .map((n) => (include ? n : n.slice(0, -".policy".length)))
        .sort();
    },
    async get(name, include) {
      const text = read(name, include);
      return text === undefined ? undefined : { name, include, text, token: policyToken(text) };
    },
    async replace(name, include, text, token) {
      check(name, include, token);
      const target = file(name, include);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      const tmp = `${target}.qkit-${process.pid}.tmp`;
      fs.writeFileSync(tmp, text, { mode: 0o644 });
      fs.renameSync(tmp, target);
    },
    async remove(name, include, token) {
      if (read(name, include) === undefined) throw new PolicyAdminFileNotFoundException(`Not found: ${file(name, include)}`, { qubesType: "PolicyAdminFileNotFoundException" });
      check(name, include, token);
      fs.unlinkSync(file(name, include));
    },
  };
}
