/**
 * Bytes that are not UTF-8, as Python's strict decoder finds them: the qrexec
 * daemon reads every policy file as UTF-8 text and fails on the first byte it
 * cannot decode (UnicodeDecodeError), so no policy loads and every call is
 * denied. A file system that reads bytes says where (see
 * `PolicyFileSystem.notUtf8`); the loaders report it. Pure: no I/O.
 */

/** The first undecodable sequence of a file. */
export interface Utf8Problem {
  /** Its byte offset in the file. */
  offset: number;
  /** The byte at `offset`. */
  byte: number;
  /** Python's words for it. */
  reason: "invalid start byte" | "invalid continuation byte" | "unexpected end of data";
  /** Where it is in the text as read (decoded with U+FFFD for undecodable bytes): the UTF-16 offset. */
  textOffset: number;
}

/**
 * The first sequence of `bytes` that is not UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or `undefined` when every
 * byte decodes. The reasons are CPython's: a byte that cannot start a
 * sequence; a lead byte not followed by the continuation bytes it needs
 * (also the second bytes that would make an overlong form, a surrogate or a
 * code point above U+10FFFF); a sequence cut by the end of the file.
 */
export function findUtf8Problem(bytes: Uint8Array): Utf8Problem | undefined {
  let units = 0;
  const n = bytes.length;
  for (let i = 0; i < n; ) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      units++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      else if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      else if (b === 0xf4) hi = 0x8f;
    } else return { offset: i, byte: b, reason: "invalid start byte", textOffset: units };
    for (let k = 1; k <= need; k++) {
      if (i + k >= n) return { offset: i, byte: b, reason: "unexpected end of data", textOffset: units };
      const c = bytes[i + k]!;
      if (k === 1 ? c < lo || c > hi : c < 0x80 || c > 0xbf) return { offset: i, byte: b, reason: "invalid continuation byte", textOffset: units };
    }
    i += need + 1;
    units += need === 3 ? 2 : 1;
  }
  return undefined;
}

/** The one-line message of a policy file that is not UTF-8. */
export function notUtf8Message(file: string, p: Utf8Problem): string {
  return `${file} is not UTF-8 text: byte 0x${p.byte.toString(16).padStart(2, "0")} at offset ${p.offset} (${p.reason}); the engine fails to read it (UnicodeDecodeError), so every call is denied`;
}

/** What to do about it. */
export const NOT_UTF8_HELP = "save the file as UTF-8 (for example `iconv -f latin1 -t utf-8 FILE`), or remove the character";

/** The line (1-based, universal newlines: `\n`, `\r\n`, a lone `\r`) that holds `offset` of `text`. */
export function lineAtOffset(text: string, offset: number): number {
  let line = 1;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || (c === 13 && text.charCodeAt(i + 1) !== 10)) line++;
  }
  return line;
}
