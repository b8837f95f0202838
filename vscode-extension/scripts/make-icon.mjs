// Draws the extension's icon (`icon.png`, 128×128 RGBA) from shapes, with no image library:
// a blue rounded square, a white ring with a tail (a "Q"), and three rule lines inside it, the
// last one shorter, as in a policy file. Run `node scripts/make-icon.mjs` after changing it;
// the PNG is committed. Every pixel is the coverage of 4×4 samples, so edges are smooth.
import { writeFileSync } from "node:fs";
import { deflateSync } from "node:zlib";
import { fileURLToPath } from "node:url";

const SIZE = 128;
const SAMPLES = 4;
const BLUE = [0x2f, 0x6f, 0xd0];
const DEEP = [0x1d, 0x4a, 0x96];
const WHITE = [0xff, 0xff, 0xff];

/** Inside the rounded square (corner radius 24, 4 px margin). */
function inBackground(x, y) {
  const r = 24, lo = 4, hi = SIZE - 4;
  const cx = Math.min(Math.max(x, lo + r), hi - r);
  const cy = Math.min(Math.max(y, lo + r), hi - r);
  return x >= lo && x <= hi && y >= lo && y <= hi && (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
}

/** The ring of the "Q" (centre 60,60, radii 30 to 41) and its tail towards the lower right. */
function inQ(x, y) {
  const d = Math.hypot(x - 60, y - 60);
  if (d >= 30 && d <= 41) return true;
  // The tail: a thick segment from (82,82) to (104,104), 12 px wide.
  const t = Math.max(0, Math.min(1, ((x - 82) * 22 + (y - 82) * 22) / (22 * 22 * 2)));
  const px = 82 + 22 * t, py = 82 + 22 * t;
  return Math.hypot(x - px, y - py) <= 6.5;
}

/** Three rounded rule lines inside the ring. */
function inLines(x, y) {
  const bars = [[42, 78, 49], [42, 78, 60], [42, 64, 71]];
  return bars.some(([x0, x1, cy]) => {
    const cx = Math.min(Math.max(x, x0), x1);
    return Math.hypot(x - cx, y - cy) <= 3.2;
  });
}

function colourAt(x, y) {
  if (!inBackground(x, y)) return null;
  if (inQ(x, y) || inLines(x, y)) return WHITE;
  // A soft diagonal shade of the background.
  const k = (x + y) / (2 * SIZE);
  return BLUE.map((c, i) => Math.round(c * (1 - k) + DEEP[i] * k));
}

const raw = Buffer.alloc(SIZE * (SIZE * 4 + 1));
for (let y = 0; y < SIZE; y++) {
  raw[y * (SIZE * 4 + 1)] = 0; // filter: none
  for (let x = 0; x < SIZE; x++) {
    let r = 0, g = 0, b = 0, a = 0;
    for (let sy = 0; sy < SAMPLES; sy++) {
      for (let sx = 0; sx < SAMPLES; sx++) {
        const c = colourAt(x + (sx + 0.5) / SAMPLES, y + (sy + 0.5) / SAMPLES);
        if (!c) continue;
        r += c[0]; g += c[1]; b += c[2]; a++;
      }
    }
    const o = y * (SIZE * 4 + 1) + 1 + x * 4;
    if (a) {
      raw[o] = Math.round(r / a);
      raw[o + 1] = Math.round(g / a);
      raw[o + 2] = Math.round(b / a);
    }
    raw[o + 3] = Math.round((255 * a) / (SAMPLES * SAMPLES));
  }
}

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const byte of buf) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "ascii");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}
const ihdr = Buffer.alloc(13);
ihdr.writeUInt32BE(SIZE, 0);
ihdr.writeUInt32BE(SIZE, 4);
ihdr[8] = 8; // bit depth
ihdr[9] = 6; // RGBA
const png = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  chunk("IHDR", ihdr),
  chunk("IDAT", deflateSync(raw, { level: 9 })),
  chunk("IEND", Buffer.alloc(0)),
]);
writeFileSync(fileURLToPath(new URL("../icon.png", import.meta.url)), png);
console.log(`icon.png: ${SIZE}×${SIZE}, ${png.length} bytes`);
