/**
 * The auditor's toolkit: policy tests and coverage, the exact semantic diff
 * of two policies, and who-can / what-can / decision-table queries. Every
 * answer is a statement about real decisions of the evaluator.
 */
export * from "./expect.js";
export * from "./testfile.js";
export * from "./run.js";
export * from "./space.js";
export * from "./diff.js";
export * from "./query.js";
export * from "./editor.js";
export * from "./flip.js";
export * from "./replay.js";
