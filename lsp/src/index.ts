/**
 * `@qubes-kit/lsp`: the qrexec policy language server as a library.
 *
 * - {@link startServer}: serve on any `vscode-languageserver` connection with a {@link ServerHost}.
 * - {@link createNodeHost}: the disk and the system model on Node.js.
 * - {@link CountingReader}: wrap the connection's reader with it and hand its `arrived` to
 *   {@link PolicyServer.messageArrived}, so that messages go before analysis (as `qkit-lsp --stdio` does).
 * - {@link PriorityWriter}: wrap the connection's writer with it, so that answers go before
 *   diagnostics notifications that wait (as `qkit-lsp --stdio` does).
 * - The custom requests (`qubes/evaluate`, `qubes/explain`, `qubes/systemModel`,
 *   `qubes/decisionTable`) and settings are typed in `protocol.ts`.
 *
 * The `qkit-lsp` binary is `dist/server.cjs`; the browser/worker entry is `dist/browser.js`.
 *
 * @packageDocumentation
 */
export * from "./protocol.js";
export { startServer, LANGUAGE_ID, type PolicyServer, type StartOptions } from "./server-core.js";
export { CountingReader } from "./incoming.js";
export { PriorityWriter } from "./outgoing.js";
export { createMemoryHost, type HostFileSystem, type ServerHost, type SystemLoadResult } from "./host.js";
export { createNodeHost, createNodeFileSystem, fetchSystemInfoFromSocket, loadSystemModel, DEFAULT_INTERNAL_SOCKET } from "./node-host.js";
export { PolicyProject, findPolicyDirIn, guessPolicyRoot, type DocumentOverlay } from "./project.js";
export { toRange, toSpan, toLspDiagnostic, matchesLspDiagnostic, sameLspDiagnostic, mapperFor, DIAGNOSTIC_SOURCE } from "./convert.js";
export { encodeMessage, encodeMessageBytes, cachingJsonEncoder } from "./encoder.js";
