/**
 * A small JSON-RPC 2.0 client over a worker's message port: what the page needs to talk LSP
 * to the server worker (requests with ids, notifications both ways, and answers to the
 * server's own requests).
 */

/** A message port: a `Worker`, or anything with the same two members. */
export interface RpcPort {
  postMessage(message: unknown): void;
  addEventListener(type: "message", listener: (event: MessageEvent) => void): void;
}

/** An error answer of the server. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = "RpcError";
  }
}

type Handler = (params: unknown) => unknown;

/** The client end of a JSON-RPC connection. */
export class RpcClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  private readonly notificationHandlers = new Map<string, Array<(params: unknown) => void>>();
  private readonly requestHandlers = new Map<string, Handler>();

  constructor(private readonly port: RpcPort) {
    port.addEventListener("message", (event) => this.receive(event.data));
  }

  /** Sends a request; resolves with its result, rejects with an {@link RpcError}. */
  request<T>(method: string, params?: unknown): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.port.postMessage({ jsonrpc: "2.0", id, method, params });
    });
  }

  /** Sends a notification. */
  notify(method: string, params?: unknown): void {
    this.port.postMessage({ jsonrpc: "2.0", method, params });
  }

  /** Listens to a notification of the server. */
  onNotification(method: string, handler: (params: unknown) => void): void {
    const list = this.notificationHandlers.get(method) ?? [];
    list.push(handler);
    this.notificationHandlers.set(method, list);
  }

  /** Answers a request of the server (unhandled methods get `MethodNotFound`). */
  onRequest(method: string, handler: Handler): void {
    this.requestHandlers.set(method, handler);
  }

  private receive(data: unknown): void {
    if (typeof data !== "object" || data === null) return;
    const m = data as { id?: number | string | null; method?: string; params?: unknown; result?: unknown; error?: { code: number; message: string; data?: unknown } };
    if (typeof m.method === "string") {
      if (m.id === undefined || m.id === null) {
        for (const h of this.notificationHandlers.get(m.method) ?? []) h(m.params);
        return;
      }
      const handler = this.requestHandlers.get(m.method);
      const reply = (body: object) => this.port.postMessage({ jsonrpc: "2.0", id: m.id, ...body });
      if (!handler) {
        reply({ error: { code: -32601, message: `unhandled method ${m.method}` } });
        return;
      }
      Promise.resolve()
        .then(() => handler(m.params))
        .then(
          (result) => reply({ result: result ?? null }),
          (e: unknown) => reply({ error: { code: -32603, message: e instanceof Error ? e.message : String(e) } }),
        );
      return;
    }
    if (typeof m.id !== "number") return;
    const waiting = this.pending.get(m.id);
    if (!waiting) return;
    this.pending.delete(m.id);
    if (m.error) waiting.reject(new RpcError(m.error.code, m.error.message, m.error.data));
    else waiting.resolve(m.result);
  }
}
