/**
 * Types of bench/gen-policy.mjs, for the TypeScript tests that import it.
 */

/** The seeded PRNG of the generator (sfc32 seeded through splitmix32). */
export declare class Rng {
  constructor(seed: number);
  u32(): number;
  random(): number;
  int(n: number): number;
  choice<T>(items: readonly T[]): T;
  sample<T>(items: readonly T[], k: number): T[];
  weighted<T>(pairs: ReadonlyArray<readonly [T, number]>): T;
  uuid(): string;
}

/** Options of {@link generate}. */
export interface GenerateOptions {
  rules?: number;
  services?: number;
  domains?: number;
  requests?: number;
  files?: number;
  genericRules?: number;
  seed?: number;
}

/** A generated policy, system and request stream. */
export interface Generated {
  /** Policy files keyed relative to `/etc/qubes/policy.d`. */
  files: Record<string, string>;
  system: { domains: Record<string, Record<string, unknown>> };
  requests: Array<{ service: string; argument: string; source: string; target: string }>;
  /** Rule lines over all files (the catch-all and included rules counted once). */
  ruleLines: number;
}

export declare function generate(options?: GenerateOptions): Generated;
export declare function writeGenerated(out: string, generated: Generated, options?: { emitOracle?: number }): void;
