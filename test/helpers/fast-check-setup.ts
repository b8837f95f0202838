/**
 * Every property test runs under a time limit. A property that fails on an
 * expensive case can shrink for a very long time (each shrink step reruns the
 * property), and a synchronous run is out of reach of vitest's test timeout: a
 * CI run once spent its whole budget shrinking one counterexample. Past the
 * limit, fast-check stops and reports the property as failed with the smallest
 * counterexample found so far and its seed, so the failure is still
 * reproducible (`{ seed, path }` in the message).
 *
 * QKIT_FC_SEED=N runs every property with seed N (to replay a CI failure, or
 * to look for rare ones with several seeds).
 */
import fc from "fast-check";

const seed = process.env.QKIT_FC_SEED;
fc.configureGlobal({
  interruptAfterTimeLimit: 120_000,
  markInterruptAsFailure: true,
  ...(seed !== undefined && seed !== "" && Number.isInteger(Number(seed)) ? { seed: Number(seed) } : {}),
});
