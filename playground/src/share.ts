/**
 * The shareable link: the policy files and the system model, as JSON, compressed with
 * `CompressionStream("deflate")` and written in base64url after `#v1=` in the URL fragment
 * (the fragment never reaches a server).
 */

/** What a link holds. */
export interface PlaygroundState {
  /** Policy files by name relative to the policy directory (`30-user.policy`, `include/admin-mgmt`). */
  files: Array<{ name: string; text: string }>;
  /** The system model (GetSystemInfo JSON), as the user wrote it. */
  system: string;
}

const PREFIX = "v1=";

/** Bytes → base64url without padding. */
export function toBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** base64url (padding optional) → bytes; `undefined` when the text is not base64url. */
export function fromBase64Url(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return undefined;
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

async function pipe(bytes: Uint8Array<ArrayBuffer>, stream: CompressionStream | DecompressionStream): Promise<Uint8Array<ArrayBuffer>> {
  const out = new Blob([bytes]).stream().pipeThrough(stream);
  return new Uint8Array(await new Response(out).arrayBuffer());
}

/** The fragment (without `#`) for a state. */
export async function encodeState(state: PlaygroundState): Promise<string> {
  const json = JSON.stringify({ files: state.files.map((f) => [f.name, f.text]), system: state.system });
  return PREFIX + toBase64Url(await pipe(new TextEncoder().encode(json), new CompressionStream("deflate")));
}

/** The outcome of reading a fragment: a state, nothing (no fragment), or why it cannot be read. */
export type DecodeResult = { state: PlaygroundState } | { empty: true } | { error: string };

/** Reads a fragment (with or without its `#`). Never throws. */
export async function decodeState(fragment: string): Promise<DecodeResult> {
  const text = fragment.replace(/^#/, "");
  if (text === "") return { empty: true };
  if (!text.startsWith(PREFIX)) return { error: `the link's fragment does not start with ${PREFIX}: it is not a playground link (the page opened with its example) [link-not-playground]` };
  const bytes = fromBase64Url(text.slice(PREFIX.length));
  if (!bytes) return { error: "the link's fragment is not base64url: it was cut or changed (the page opened with its example) [link-not-base64url]" };
  let json: string;
  try {
    json = new TextDecoder("utf-8", { fatal: true }).decode(await pipe(bytes, new DecompressionStream("deflate")));
  } catch {
    return { error: "the link's data does not decompress: it was cut or changed (the page opened with its example) [link-not-deflate]" };
  }
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return { error: "the link's data is not JSON: it was cut or changed (the page opened with its example) [link-not-json]" };
  }
  const v = value as { files?: unknown; system?: unknown } | null;
  const files = Array.isArray(v?.files) ? v.files : undefined;
  const valid =
    typeof v?.system === "string" &&
    files !== undefined &&
    files.length > 0 &&
    files.every((f) => Array.isArray(f) && f.length === 2 && typeof f[0] === "string" && typeof f[1] === "string");
  if (!valid) return { error: "the link's data has an unknown shape (files and system expected): the page opened with its example [link-bad-shape]" };
  return { state: { files: (files as Array<[string, string]>).map(([name, text]) => ({ name, text })), system: v!.system as string } };
}
