/**
 * Imported first by the playground's worker: tells `lsp/src/browser.ts` not to start a server
 * on `self` by itself, because the worker starts it with its own port and host.
 */
(globalThis as { qkitLspManualStart?: boolean }).qkitLspManualStart = true;
export {};
