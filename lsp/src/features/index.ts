/**
 * The server's feature table: one module per feature, each announcing its
 * capabilities and its request handlers. `server-core.ts` registers them all
 * through one guard (`registerFeatures`). To add a feature, add a line here.
 */
import { actionsFeature } from "./actions.js";
import { commandsFeature } from "./commands.js";
import { diagnosticsFeature } from "./diagnostics.js";
import { helpFeature } from "./help.js";
import { completionFeature } from "./completion.js";
import { formatFeature } from "./format.js";
import { hoverFeature } from "./hover.js";
import { lensFeature } from "./lens.js";
import { navigationFeature } from "./navigation.js";
import { outlineFeature } from "./outline.js";
import { renameFeature } from "./rename.js";
import { semanticFeature } from "./semantic.js";
import { simulateFeature } from "./simulate.js";
import { templateFeature } from "./template.js";
import type { ServerFeature } from "./types.js";

export { registerFeatures, throwIfCancelled, type ServerContext, type ServerFeature } from "./types.js";

/** Every feature of the server, in registration order. */
export const FEATURES: readonly ServerFeature[] = [
  completionFeature,
  hoverFeature,
  navigationFeature,
  outlineFeature,
  formatFeature,
  semanticFeature,
  actionsFeature,
  lensFeature,
  simulateFeature,
  templateFeature,
  renameFeature,
  helpFeature,
  diagnosticsFeature,
  commandsFeature,
];
