import { PNG } from 'pngjs';
import { drawText, type RgbaImage, type Rgb, type TextOptions } from './font';

export type { Rgb } from './font';

// Hot loops use these module-level copies rather than Math.*: under Jest the code runs in a vm context, where
// every global lookup goes through an interceptor and costs tens of times more.
const sqrt = Math.sqrt;

export const WHITE: Rgb = [255, 255, 255];
export const BLACK: Rgb = [0, 0, 0];

/** A point in pixel coordinates; pixel (i, j) covers [i, i + 1) x [j, j + 1), so its centre is (i + 0.5, j + 0.5). */
export interface Point {
  x: number;
  y: number;
}

function clamp01(value: number): number {
  return value < 0 ? 0 : value > 1 ? 1 : value;
}

/** Distance from (px, py) to the segment a-b. */
function segmentDistance(px: number, py: number, a: Point, b: Point): number {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const lengthSquared = dx * dx + dy * dy;
  const t = lengthSquared > 0 ? clamp01(((px - a.x) * dx + (py - a.y) * dy) / lengthSquared) : 0;
  const ex = px - (a.x + t * dx);
  const ey = py - (a.y + t * dy);
  return sqrt(ex * ex + ey * ey);
}

/** A small opaque RGBA image with the drawing operations the report plots need. */
export class Raster implements RgbaImage {
  readonly data: Uint8Array;

  /** Creates a width x height image filled with the background colour (white by default). */
  constructor(
    readonly width: number,
    readonly height: number,
    background: Rgb = WHITE,
  ) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0)
      throw new RangeError(`raster size must be positive integers, got ${width}x${height}`);
    this.data = new Uint8Array(width * height * 4);
    this.fillRect(0, 0, width, height, background);
  }

  /** Mixes colour into one pixel with the given coverage (0..1); pixels outside the image are ignored. */
  blend(x: number, y: number, color: Rgb, alpha = 1): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height || !(alpha > 0)) return;
    const a = alpha >= 1 ? 1 : alpha;
    const i = (y * this.width + x) * 4;
    // Adding 0.5 and truncating rounds these non-negative values without a global lookup.
    for (let k = 0; k < 3; k++) this.data[i + k] = (this.data[i + k] * (1 - a) + color[k] * a + 0.5) | 0;
    this.data[i + 3] = 255;
  }

  /** The RGB colour of one pixel. */
  pixel(x: number, y: number): Rgb {
    const i = (y * this.width + x) * 4;
    return [this.data[i], this.data[i + 1], this.data[i + 2]];
  }

  /** Fills the rectangle [x, x + w) x [y, y + h), rounded to whole pixels and clipped to the image. */
  fillRect(x: number, y: number, w: number, h: number, color: Rgb): void {
    const x0 = Math.max(0, Math.round(x));
    const y0 = Math.max(0, Math.round(y));
    const x1 = Math.min(this.width, Math.round(x + w));
    const y1 = Math.min(this.height, Math.round(y + h));
    for (let j = y0; j < y1; j++)
      for (let i = x0; i < x1; i++) {
        const o = (j * this.width + i) * 4;
        this.data[o] = color[0];
        this.data[o + 1] = color[1];
        this.data[o + 2] = color[2];
        this.data[o + 3] = 255;
      }
  }

  /** Outlines the rectangle [x, x + w) x [y, y + h) with a border thickness pixels wide, drawn inside it. */
  strokeRect(x: number, y: number, w: number, h: number, color: Rgb, thickness = 1): void {
    const t = Math.max(1, Math.round(thickness));
    this.fillRect(x, y, w, t, color);
    this.fillRect(x, y + h - t, w, t, color);
    this.fillRect(x, y, t, h, color);
    this.fillRect(x + w - t, y, t, h, color);
  }

  /** A crisp one-colour horizontal line from x0 to x1 (inclusive) at row y, thickness rows tall. */
  hline(x0: number, x1: number, y: number, color: Rgb, thickness = 1): void {
    const lo = Math.min(x0, x1);
    this.fillRect(lo, y, Math.abs(x1 - x0) + 1, thickness, color);
  }

  /** A crisp one-colour vertical line from y0 to y1 (inclusive) at column x, thickness columns wide. */
  vline(x: number, y0: number, y1: number, color: Rgb, thickness = 1): void {
    const lo = Math.min(y0, y1);
    this.fillRect(x, lo, thickness, Math.abs(y1 - y0) + 1, color);
  }

  /** An anti-aliased straight line of the given thickness with round ends. */
  line(x0: number, y0: number, x1: number, y1: number, color: Rgb, thickness = 1): void {
    this.polyline(
      [
        { x: x0, y: y0 },
        { x: x1, y: y1 },
      ],
      color,
      thickness,
    );
  }

  /**
   * An anti-aliased polyline with round joins. Coverage is the maximum over segments rather than a sum, so the
   * joins are not darker than the rest of the line. Points with non-finite coordinates are ignored.
   */
  polyline(points: readonly Point[], color: Rgb, thickness = 1): void {
    const pts = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    if (pts.length === 0) return;
    const half = Math.max(0.5, thickness / 2);
    const reach = half + 1;
    const xs = pts.map((p) => p.x);
    const ys = pts.map((p) => p.y);
    const bx0 = Math.max(0, Math.floor(Math.min(...xs) - reach));
    const by0 = Math.max(0, Math.floor(Math.min(...ys) - reach));
    const bx1 = Math.min(this.width - 1, Math.ceil(Math.max(...xs) + reach));
    const by1 = Math.min(this.height - 1, Math.ceil(Math.max(...ys) + reach));
    if (bx1 < bx0 || by1 < by0) return;
    const bw = bx1 - bx0 + 1;
    const coverage = new Float32Array(bw * (by1 - by0 + 1));
    const segments = pts.length === 1 ? [[pts[0], pts[0]]] : pts.slice(1).map((p, i) => [pts[i], p]);
    for (const [a, b] of segments) {
      const sx0 = Math.max(bx0, Math.floor(Math.min(a.x, b.x) - reach));
      const sy0 = Math.max(by0, Math.floor(Math.min(a.y, b.y) - reach));
      const sx1 = Math.min(bx1, Math.ceil(Math.max(a.x, b.x) + reach));
      const sy1 = Math.min(by1, Math.ceil(Math.max(a.y, b.y) + reach));
      for (let j = sy0; j <= sy1; j++)
        for (let i = sx0; i <= sx1; i++) {
          // A pixel is a unit square; half + 0.5 - distance approximates the share of it the stroke covers.
          const c = clamp01(half + 0.5 - segmentDistance(i + 0.5, j + 0.5, a, b));
          const o = (j - by0) * bw + (i - bx0);
          if (c > coverage[o]) coverage[o] = c;
        }
    }
    for (let j = by0; j <= by1; j++)
      for (let i = bx0; i <= bx1; i++) this.blend(i, j, color, coverage[(j - by0) * bw + (i - bx0)]);
  }

  /** An anti-aliased filled disc centred at (cx, cy). */
  fillCircle(cx: number, cy: number, radius: number, color: Rgb): void {
    this.polyline([{ x: cx, y: cy }], color, 2 * radius);
  }

  /** Draws text with the built-in bitmap font, top-left at (x, y); returns the width it took. */
  text(x: number, y: number, text: string, color: Rgb, options: TextOptions = {}): number {
    return drawText(this, x, y, text, color, options);
  }

  /**
   * The image as an 8-bit RGB PNG: every pixel is opaque, so an alpha channel would carry nothing. The alpha
   * bytes are dropped here so that pngjs takes its no-conversion path, and one fixed row filter (Up: plots are
   * mostly columns of identical pixels, and it compresses within 10% of the per-row search over all five filters
   * at a fraction of the time) replaces that search.
   */
  encodePng(): Buffer {
    const pixels = this.width * this.height;
    const rgb = Buffer.alloc(pixels * 3);
    const data = this.data;
    for (let p = 0; p < pixels; p++) {
      rgb[3 * p] = data[4 * p];
      rgb[3 * p + 1] = data[4 * p + 1];
      rgb[3 * p + 2] = data[4 * p + 2];
    }
    const png = new PNG({ width: this.width, height: this.height });
    png.data = rgb;
    return PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false, filterType: 2 });
  }
}
