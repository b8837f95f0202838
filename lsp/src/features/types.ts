/**
 * What a feature module of the server is, and the one place where every
 * request handler is guarded: a request the client cancelled answers
 * `RequestCancelled`, parameters of the wrong shape answer `InvalidParams`,
 * and any other failure is logged and answered with the handler's fallback,
 * so no request can take the server down.
 */
import {
  ErrorCodes,
  LSPErrorCodes,
  ResponseError,
  type CancellationToken,
  type Connection,
  type InitializeParams,
  type Location,
  type ServerCapabilities,
  type TextDocuments,
  type CodeLens,
} from "vscode-languageserver";
import type { TextDocument } from "vscode-languageserver-textdocument";
import type { CompletionContext, PolicyDocument, PolicySnapshot, SystemInfo } from "@qubes-kit/language";
import type { PositionMapper } from "../convert.js";
import type { ServerHost } from "../host.js";
import type { PolicyProject } from "../project.js";
import type { QubesPolicySettings, SystemSource } from "../protocol.js";
import type { DocumentFeature } from "../template/feature.js";
import type { PushRouter } from "./pushes.js";
import { traceEvent } from "../trace.js";

/** An open policy document with its project, parse and paths. */
export interface DocumentContext {
  td: TextDocument;
  project: PolicyProject;
  /** The disk path. */
  disk: string;
  /** The path inside the project's snapshot. */
  path: string;
  doc: PolicyDocument;
}

/** The cursor's line parsed alone (completion). */
export interface LineContext {
  td: TextDocument;
  project: PolicyProject;
  doc: PolicyDocument;
  lineStart: number;
  offset: number;
}

/** What the server core shares with its feature modules. */
export interface ServerContext {
  readonly connection: Connection;
  readonly documents: TextDocuments<TextDocument>;
  readonly host: ServerHost;
  readonly settings: QubesPolicySettings;
  readonly system: SystemInfo | null;
  readonly systemSource: SystemSource;
  readonly systemError: string | undefined;
  /** The system model file, when the source is a file. */
  readonly systemFilePath: string | undefined;
  readonly clientCaps: InitializeParams["capabilities"];
  /** True when the client is VS Code (it can run `editor.action.triggerSuggest`). */
  readonly retriggerCommand: boolean;
  readonly folders: readonly string[];
  log(msg: string): void;
  pathOfUri(uri: string): string;
  uriOf(disk: string): string;
  projectFor(uri: string): PolicyProject;
  /** Every project the server knows. */
  projects(): Iterable<PolicyProject>;
  /** The project a custom request is about: the URI's, or the first. */
  scopeProject(uri: string | undefined): PolicyProject | undefined;
  /** The project of the workspace policy a stack file refers to. */
  workspacePolicyFor(disk: string): PolicyProject | undefined;
  /** The document feature (stack files) that handles a URI, if any. */
  featureFor(uri: string): DocumentFeature | undefined;
  /** The open policy document's context (undefined when not open or not a policy). */
  context(uri: string): DocumentContext | undefined;
  lineContext(uri: string, position: { line: number; character: number }): LineContext | undefined;
  /** The project's current analysis, waited for; `RequestCancelled` when the client gives up. */
  analysed(project: PolicyProject, token: CancellationToken | undefined): Promise<PolicySnapshot>;
  /** What completion answers from: the newest snapshot whose vocabulary is built, else the last one. */
  completionContext(project: PolicyProject): CompletionContext;
  mapperForPath(project: PolicyProject, snapshot: PolicySnapshot, disk: string): PositionMapper | undefined;
  locationOf(project: PolicyProject, snapshot: PolicySnapshot, virtual: string, span: { start: number; end: number }): Location | undefined;
  /** The location of a rule given by file name and 1-based line. */
  ruleLocation(project: PolicyProject, snapshot: PolicySnapshot, ref: { file: string; line: number | null } | undefined): Location | undefined;
  /**
   * The "decided by N tests" lenses of a policy file's rules (from the policy test files that use
   * the policy), placed on the lines of the document as it is now (`doc`, `mapper`).
   */
  testLenses(project: PolicyProject, snapshot: PolicySnapshot, virtualPath: string, current: { doc: PolicyDocument; mapper: PositionMapper }): CodeLens[];
  /** Where diagnostics go (pushed or pulled), and the latest list of every URI. */
  readonly pushes: PushRouter;
  /** The system model, or an empty one. */
  systemOrEmpty(): SystemInfo;
  /** Why names fall back to `@default` (no system model), if so. */
  noSystemNote(): string | undefined;
  /**
   * A pacer for long work: each call yields to other messages once a slice of time is used up,
   * and throws `RequestCancelled` when the client cancelled meanwhile.
   */
  slicer(token: CancellationToken | undefined): () => Promise<void>;
}

/** The shape of parameters a handler needs before it runs. */
export type ParamShape = "any" | "object" | "textDocument" | "position";

/** One request handler of a feature. */
export interface RequestHandler {
  /** The JSON-RPC method. */
  method: string;
  /** Answered when the handler fails unexpectedly (logged). */
  fallback: unknown;
  /** What the parameters must look like (default `object`): else `InvalidParams`. */
  params?: ParamShape;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  run(params: any, token: CancellationToken): unknown;
}

/** A feature module: the capabilities it announces and the requests it answers. */
export interface ServerFeature {
  /** A name for logs. */
  name: string;
  /** Capabilities merged into the `initialize` result. */
  capabilities?(ctx: ServerContext): ServerCapabilities;
  /** Its request handlers. */
  requests(ctx: ServerContext): RequestHandler[];
}

/** Answers `RequestCancelled` when the client cancelled the request (`$/cancelRequest`). */
export function throwIfCancelled(token: unknown): void {
  if (typeof token === "object" && token !== null && (token as Partial<CancellationToken>).isCancellationRequested === true) {
    throw new ResponseError(LSPErrorCodes.RequestCancelled, "request cancelled");
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isPosition = (v: unknown): boolean =>
  isObject(v) && Number.isInteger(v.line) && Number.isInteger(v.character) && (v.line as number) >= 0 && (v.character as number) >= 0;

/** Refuses parameters that do not have the shape a handler needs. */
export function checkParams(shape: ParamShape, params: unknown): void {
  if (shape === "any") return;
  if (!isObject(params)) throw new ResponseError(ErrorCodes.InvalidParams, "parameters must be an object");
  if (shape === "object") return;
  if (!isObject(params.textDocument) || typeof params.textDocument.uri !== "string") {
    throw new ResponseError(ErrorCodes.InvalidParams, "`textDocument.uri` must be a string");
  }
  if (shape === "position" && !isPosition(params.position)) {
    throw new ResponseError(ErrorCodes.InvalidParams, "`position` must be {line, character} with non-negative integers");
  }
}

/**
 * Wraps a handler: cancellation before it runs, the parameter check, and the
 * fallback on failure (a `ResponseError` goes back to the client as is).
 */
export function guarded(h: RequestHandler, log: (msg: string) => void): (...args: unknown[]) => Promise<unknown> {
  // The connection calls a handler with (token) when the request has no parameters,
  // (params, token) for parameters by name, and (...params, token) for positional ones.
  return async (...args) => {
    const token = args[args.length - 1] as CancellationToken;
    const params = args.length === 1 ? undefined : args.length === 2 ? args[0] : args.slice(0, -1);
    throwIfCancelled(token);
    checkParams(h.params ?? "object", params);
    try {
      traceEvent("begin", h.method);
      const result = h.run(params, token);
      traceEvent("end", h.method);
      return await result;
    } catch (e) {
      if (e instanceof ResponseError) throw e;
      log(`qubes-policy: ${h.method} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      return h.fallback;
    }
  };
}

/** Registers every handler of the features on the connection (guarded); returns their merged capabilities. */
export function registerFeatures(ctx: ServerContext, features: readonly ServerFeature[]): { capabilities(): ServerCapabilities } {
  const seen = new Set<string>();
  for (const f of features) {
    for (const h of f.requests(ctx)) {
      if (seen.has(h.method)) throw new Error(`two features answer ${h.method}`);
      seen.add(h.method);
      ctx.connection.onRequest(h.method, guarded(h, ctx.log));
    }
  }
  return {
    capabilities() {
      const out: ServerCapabilities = {};
      for (const f of features) {
        const caps = f.capabilities?.(ctx);
        if (!caps) continue;
        for (const [k, v] of Object.entries(caps)) {
          const prev = (out as Record<string, unknown>)[k];
          (out as Record<string, unknown>)[k] = isObject(prev) && isObject(v) ? { ...prev, ...v } : v;
        }
      }
      return out;
    },
  };
}
