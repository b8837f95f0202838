/** The one message of the page to the server worker that is not LSP: the system model file's new text. */
export interface SystemMessage {
  playground: "system";
  /** The file's absolute path (the `system.file` setting). */
  path: string;
  text: string;
}

/** True for a {@link SystemMessage}; anything else is a JSON-RPC message. */
export function isSystemMessage(data: unknown): data is SystemMessage {
  const m = data as Partial<SystemMessage> | null;
  return typeof m === "object" && m !== null && m.playground === "system" && typeof m.path === "string" && typeof m.text === "string";
}
