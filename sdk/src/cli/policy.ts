import type { Command } from "./command.js";

/** Placeholder until this command family lands. */
export const commands: Command[] = [];
