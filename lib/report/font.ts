/**
 * A small bitmap font for plot labels, so that rendering needs no canvas library and no system fonts.
 *
 * Each glyph is 5 pixels wide and 9 rows tall: rows 0-6 hold capitals and digits, lowercase letters sit on
 * rows 2-6 and descenders (g, j, p, q, y, comma) reach rows 7-8. Glyphs advance by 6 pixels, so one blank
 * column separates neighbours. The patterns below are written row by row, top to bottom, '#' for ink.
 */

/** An RGB colour, each channel 0..255. */
export type Rgb = readonly [number, number, number];

/** Anything with RGBA pixels in row-major order, 4 bytes per pixel. */
export interface RgbaImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

export interface TextOptions {
  /** Integer magnification: 1 draws 5x7 capitals, 2 draws 10x14. */
  scale?: number;
  /** Overdraws each glyph one pixel to the right: heavier strokes for titles. */
  bold?: boolean;
  /** Rotates the text 90 degrees counter-clockwise (reads bottom to top), as on a y-axis label. */
  vertical?: boolean;
}

export const GLYPH_WIDTH = 5;
export const GLYPH_ROWS = 9;
/** Rows from the top of a glyph cell to the baseline: the height of a capital. */
export const CAP_HEIGHT = 7;
export const ADVANCE = 6;

// Trailing blank rows are left out of the patterns; parseGlyph pads them.
const PATTERNS: readonly (readonly [string, string])[] = [
  [' ', ''],
  ['!', '..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..'],
  ['"', '.#.#. .#.#. .#.#.'],
  ['#', '.#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.'],
  ['$', '..#.. .#### #.#.. .###. ..#.# ####. ..#..'],
  ['%', '##... ##..# ...#. ..#.. .#... #..## ...##'],
  ['&', '.##.. #..#. #.#.. .#... #.#.# #..#. .##.#'],
  ["'", '..#.. ..#.. .#...'],
  ['(', '...#. ..#.. .#... .#... .#... ..#.. ...#.'],
  [')', '.#... ..#.. ...#. ...#. ...#. ..#.. .#...'],
  ['*', '..... ..#.. #.#.# .###. #.#.# ..#.. .....'],
  ['+', '..... ..#.. ..#.. ##### ..#.. ..#.. .....'],
  [',', '..... ..... ..... ..... ..... .##.. .##.. ..#.. .#...'],
  ['-', '..... ..... ..... ##### ..... ..... .....'],
  ['.', '..... ..... ..... ..... ..... .##.. .##..'],
  ['/', '....# ....# ...#. ..#.. .#... #.... #....'],
  ['0', '.###. #...# #..## #.#.# ##..# #...# .###.'],
  ['1', '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.'],
  ['2', '.###. #...# ....# ...#. ..#.. .#... #####'],
  ['3', '##### ...#. ..#.. ...#. ....# #...# .###.'],
  ['4', '...#. ..##. .#.#. #..#. ##### ...#. ...#.'],
  ['5', '##### #.... ####. ....# ....# #...# .###.'],
  ['6', '..##. .#... #.... ####. #...# #...# .###.'],
  ['7', '##### ....# ...#. ..#.. .#... .#... .#...'],
  ['8', '.###. #...# #...# .###. #...# #...# .###.'],
  ['9', '.###. #...# #...# .#### ....# ...#. .##..'],
  [':', '..... .##.. .##.. ..... .##.. .##.. .....'],
  [';', '..... .##.. .##.. ..... .##.. .##.. ..#.. .#...'],
  ['<', '...#. ..#.. .#... #.... .#... ..#.. ...#.'],
  ['=', '..... ..... ##### ..... ##### ..... .....'],
  ['>', '.#... ..#.. ...#. ....# ...#. ..#.. .#...'],
  ['?', '.###. #...# ....# ...#. ..#.. ..... ..#..'],
  ['@', '.###. #...# ....# .##.# #.#.# #.#.# .###.'],
  ['A', '.###. #...# #...# ##### #...# #...# #...#'],
  ['B', '####. #...# #...# ####. #...# #...# ####.'],
  ['C', '.###. #...# #.... #.... #.... #...# .###.'],
  ['D', '###.. #..#. #...# #...# #...# #..#. ###..'],
  ['E', '##### #.... #.... ####. #.... #.... #####'],
  ['F', '##### #.... #.... ####. #.... #.... #....'],
  ['G', '.###. #...# #.... #.### #...# #...# .####'],
  ['H', '#...# #...# #...# ##### #...# #...# #...#'],
  ['I', '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.'],
  ['J', '..### ...#. ...#. ...#. ...#. #..#. .##..'],
  ['K', '#...# #..#. #.#.. ##... #.#.. #..#. #...#'],
  ['L', '#.... #.... #.... #.... #.... #.... #####'],
  ['M', '#...# ##.## #.#.# #.#.# #...# #...# #...#'],
  ['N', '#...# #...# ##..# #.#.# #..## #...# #...#'],
  ['O', '.###. #...# #...# #...# #...# #...# .###.'],
  ['P', '####. #...# #...# ####. #.... #.... #....'],
  ['Q', '.###. #...# #...# #...# #.#.# #..#. .##.#'],
  ['R', '####. #...# #...# ####. #.#.. #..#. #...#'],
  ['S', '.#### #.... #.... .###. ....# ....# ####.'],
  ['T', '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..'],
  ['U', '#...# #...# #...# #...# #...# #...# .###.'],
  ['V', '#...# #...# #...# #...# #...# .#.#. ..#..'],
  ['W', '#...# #...# #...# #.#.# #.#.# #.#.# .#.#.'],
  ['X', '#...# #...# .#.#. ..#.. .#.#. #...# #...#'],
  ['Y', '#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..'],
  ['Z', '##### ....# ...#. ..#.. .#... #.... #####'],
  ['[', '.###. .#... .#... .#... .#... .#... .###.'],
  ['\\', '#.... #.... .#... ..#.. ...#. ....# ....#'],
  [']', '.###. ...#. ...#. ...#. ...#. ...#. .###.'],
  ['^', '..#.. .#.#. #...#'],
  ['_', '..... ..... ..... ..... ..... ..... ..... #####'],
  ['`', '.#... ..#.. ...#.'],
  ['a', '..... ..... .###. ....# .#### #...# .####'],
  ['b', '#.... #.... #.##. ##..# #...# #...# ####.'],
  ['c', '..... ..... .###. #.... #.... #...# .###.'],
  ['d', '....# ....# .##.# #..## #...# #...# .####'],
  ['e', '..... ..... .###. #...# ##### #.... .###.'],
  ['f', '..##. .#..# .#... ###.. .#... .#... .#...'],
  ['g', '..... ..... .#### #...# #...# #...# .#### ....# .###.'],
  ['h', '#.... #.... #.##. ##..# #...# #...# #...#'],
  ['i', '..#.. ..... .##.. ..#.. ..#.. ..#.. .###.'],
  ['j', '...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##..'],
  ['k', '#.... #.... #..#. #.#.. ##... #.#.. #..#.'],
  ['l', '.##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.'],
  ['m', '..... ..... ##.#. #.#.# #.#.# #.#.# #.#.#'],
  ['n', '..... ..... #.##. ##..# #...# #...# #...#'],
  ['o', '..... ..... .###. #...# #...# #...# .###.'],
  ['p', '..... ..... ####. #...# #...# #...# ####. #.... #....'],
  ['q', '..... ..... .#### #...# #...# #...# .#### ....# ....#'],
  ['r', '..... ..... #.##. ##..# #.... #.... #....'],
  ['s', '..... ..... .#### #.... .###. ....# ####.'],
  ['t', '.#... .#... ####. .#... .#... .#..# ..##.'],
  ['u', '..... ..... #...# #...# #...# #..## .##.#'],
  ['v', '..... ..... #...# #...# #...# .#.#. ..#..'],
  ['w', '..... ..... #...# #...# #.#.# #.#.# .#.#.'],
  ['x', '..... ..... #...# .#.#. ..#.. .#.#. #...#'],
  ['y', '..... ..... #...# #...# #...# #...# .#### ....# .###.'],
  ['z', '..... ..... ##### ...#. ..#.. .#... #####'],
  ['{', '...## ..#.. ..#.. .#... ..#.. ..#.. ...##'],
  ['|', '..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..'],
  ['}', '##... ..#.. ..#.. ...#. ..#.. ..#.. ##...'],
  ['~', '..... ..... .#... #.#.# ...#.'],
  // Beyond ASCII: the ellipsis that marks truncated labels, and the degree sign.
  ['\u2026', '..... ..... ..... ..... ..... ..... #.#.#'],
  ['\u00b0', '.##.. #..#. .##..'],
];

/** One glyph as GLYPH_ROWS bit masks, bit 4 the leftmost column. */
function parseGlyph(pattern: string): Uint8Array {
  const rows = new Uint8Array(GLYPH_ROWS);
  pattern
    .split(' ')
    .filter((row) => row.length > 0)
    .forEach((row, r) => {
      let mask = 0;
      for (let c = 0; c < GLYPH_WIDTH; c++) if (row[c] === '#') mask |= 1 << (GLYPH_WIDTH - 1 - c);
      rows[r] = mask;
    });
  return rows;
}

const GLYPHS = new Map<string, Uint8Array>(PATTERNS.map(([ch, pattern]) => [ch, parseGlyph(pattern)]));
// Characters without a glyph print as '?', so missing coverage shows up instead of vanishing.
const FALLBACK = GLYPHS.get('?') as Uint8Array;

/** The row masks of one character's glyph (bit 4 is the leftmost column), '?' for characters not covered. */
export function glyph(ch: string): Uint8Array {
  return GLYPHS.get(ch) ?? FALLBACK;
}

function characters(text: string): string[] {
  return Array.from(text);
}

/** Width in pixels of text drawn at the given scale, without the trailing blank column. */
export function textWidth(text: string, scale = 1): number {
  const n = characters(text).length;
  return n === 0 ? 0 : (n * ADVANCE - 1) * scale;
}

/** Shortens text with a trailing ellipsis so that it fits in maxWidth pixels at the given scale. */
export function truncateText(text: string, maxWidth: number, scale = 1): string {
  if (textWidth(text, scale) <= maxWidth) return text;
  const chars = characters(text);
  const fit = Math.floor((maxWidth / scale + 1) / ADVANCE) - 1;
  return fit <= 0 ? '' : chars.slice(0, fit).join('') + '\u2026';
}

function setPixel(image: RgbaImage, x: number, y: number, color: Rgb): void {
  if (x < 0 || y < 0 || x >= image.width || y >= image.height) return;
  const i = (y * image.width + x) * 4;
  image.data[i] = color[0];
  image.data[i + 1] = color[1];
  image.data[i + 2] = color[2];
  image.data[i + 3] = 255;
}

/**
 * Draws text with its top-left corner at (x, y): the top of a capital is at y, the baseline at
 * y + CAP_HEIGHT * scale. Vertical text reads bottom to top and fills a box textWidth wide in y, starting at y.
 * Pixels outside the image are clipped. Returns the width the text advanced along its direction.
 */
export function drawText(
  image: RgbaImage,
  x: number,
  y: number,
  text: string,
  color: Rgb,
  options: TextOptions = {},
): number {
  const scale = Math.max(1, Math.round(options.scale ?? 1));
  const x0 = Math.round(x);
  const y0 = Math.round(y);
  const length = textWidth(text, scale);
  const thicken = options.bold ? 1 : 0;
  characters(text).forEach((ch, index) => {
    const rows = glyph(ch);
    for (let r = 0; r < GLYPH_ROWS; r++) {
      const mask = rows[r];
      if (mask === 0) continue;
      for (let c = 0; c < GLYPH_WIDTH; c++) {
        if (!(mask & (1 << (GLYPH_WIDTH - 1 - c)))) continue;
        // (u, v): pixel position along and across the text direction.
        const u = (index * ADVANCE + c) * scale;
        const v = r * scale;
        for (let dv = 0; dv < scale; dv++)
          for (let du = 0; du < scale + thicken; du++) {
            if (options.vertical) setPixel(image, x0 + v + dv, y0 + length - 1 - (u + du), color);
            else setPixel(image, x0 + u + du, y0 + v + dv, color);
          }
      }
    }
  });
  return length + thicken;
}
