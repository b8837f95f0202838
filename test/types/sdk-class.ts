/**
 * Type-level tests of the qube's class on the SDK surface (checked by
 * `tsc -b` through `test/types/tsconfig.json`; never run): the field and the
 * method are `class`, as in the CLI and templates; `klass` is only qubesd's
 * property name. Every `@ts-expect-error` must really be an error.
 */
import type { CachedQube, CloneOptions, CreateOptions, LiveQube, Qube, QubeListEntry } from "../../sdk/src/index.js";

declare const entry: QubeListEntry;
declare const cached: CachedQube;
declare const live: LiveQube;
declare const qube: Qube;

export async function classNames(): Promise<string[]> {
  const create: CreateOptions = { class: "AppVM", name: "work", label: "red" };
  // @ts-expect-error the option is `class`
  const old: CreateOptions = { klass: "AppVM", name: "work", label: "red" };
  const clone: CloneOptions = { class: "StandaloneVM" };
  // @ts-expect-error the option is `class`
  const oldClone: CloneOptions = { klass: "StandaloneVM" };
  // @ts-expect-error the list entry's field is `class`
  const e: string = entry.klass;
  // @ts-expect-error the cache entry's field is `class`
  const c: string = cached.klass;
  // @ts-expect-error the read qube's field is `class`
  const l: string = live.klass;
  // @ts-expect-error the method is `class()`
  await qube.klass();
  // The qubesd property keeps its real name.
  const p: string = await qube.get("klass");
  return [create.class, clone.class ?? "", entry.class, cached.class, live.class, await qube.class(), p, String(old), String(oldClone), e, c, l];
}
