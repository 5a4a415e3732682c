import fs from 'node:fs';
import path from 'node:path';
import {
  decodeDicom,
  orderInstances,
  readDicom,
  readDicomHeader,
  type DicomHeader,
  type DicomImage,
} from '../../lib/data/dicom';
import { StenosisError } from '../../lib/errors';
import { ROOT, runPython, tempDir } from '../helpers';

interface ImageEntry extends Omit<DicomHeader, 'file'> {
  name: string;
  file: string;
  integer: boolean;
  expectedFile: string;
}

interface ErrorEntry {
  name: string;
  file: string;
  code: string;
  messageContains: string[];
}

interface Manifest {
  images: ImageEntry[];
  errors: ErrorEntry[];
  series: { folder: string; order: string[] };
}

// Listed here as well as in the manifest so that each variant is its own test, and a fixture dropped from the
// script fails the manifest check instead of silently testing less.
const IMAGES = [
  'explicit_u16_bs12',
  'implicit_s16',
  'explicit_u8',
  'explicit_s8',
  'rescale_u16',
  'monochrome1_u16',
  'monochrome1_rescale_s16',
  'multiframe_u16',
  'multiframe_monochrome1_u8',
  'signed_bs12',
  'big_endian_s16',
  'deflated_u16',
  'raw_implicit_u16',
  'large_u16',
  'long_header_s16',
  'no_geometry_u16',
];
const ERRORS = ['jpeg_baseline', 'rle', 'no_pixels', 'short_pixels', 'rgb', 'high_bit_15'];

let dir: string;
let manifest: Manifest;

beforeAll(() => {
  dir = tempDir('dicom');
  runPython([path.join(ROOT, 'scripts', 'make_dicom_fixtures.py'), dir]);
  manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function entry(name: string): ImageEntry {
  const found = manifest.images.find((e) => e.name === name);
  if (found === undefined) throw new Error(`fixture ${name} is not in the manifest`);
  return found;
}

function expectedPixels(e: ImageEntry): Float32Array {
  const bytes = fs.readFileSync(path.join(dir, e.expectedFile));
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** The first pixel that differs by more than `relative` (0: exactly), as a readable location, or null. */
function firstMismatch(image: DicomImage, expected: Float32Array, relative: number): string | null {
  if (image.pixels.length !== expected.length) {
    return `length ${image.pixels.length}, expected ${expected.length}`;
  }
  const perFrame = image.rows * image.columns;
  for (let i = 0; i < expected.length; i++) {
    const a = image.pixels[i];
    const b = expected[i];
    const ok = relative === 0 ? a === b : Math.abs(a - b) <= relative * Math.max(Math.abs(b), 1e-6);
    if (!ok) {
      const frame = Math.floor(i / perFrame);
      const row = Math.floor((i % perFrame) / image.columns);
      return `frame ${frame} row ${row} column ${i % image.columns}: ${a}, expected ${b}`;
    }
  }
  return null;
}

async function rejection(promise: Promise<unknown>): Promise<StenosisError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(StenosisError);
    return error as StenosisError;
  }
  throw new Error('expected a rejection');
}

function headerFields(e: ImageEntry): Omit<DicomHeader, 'file'> {
  const { name: _name, file: _file, integer: _integer, expectedFile: _expected, ...fields } = e;
  return fields;
}

describe('DICOM decoding against pydicom', () => {
  test('the fixture script wrote every variant', () => {
    expect(manifest.images.map((e) => e.name).sort()).toEqual([...IMAGES].sort());
    expect(manifest.errors.map((e) => e.name).sort()).toEqual([...ERRORS].sort());
  });

  test.each(IMAGES)('%s: pixels and header match pydicom', async (name) => {
    const e = entry(name);
    const file = path.join(dir, e.file);
    const image = await readDicom(file);
    const { pixels, ...header } = image;
    expect(header).toEqual({ file, ...headerFields(e) });
    expect(pixels).toBeInstanceOf(Float32Array);
    expect(firstMismatch(image, expectedPixels(e), e.integer ? 0 : 1e-4)).toBeNull();
    // The header reader stops before the pixels (large_u16 and long_header_s16 exercise its two reads).
    expect(await readDicomHeader(file)).toEqual(header);
  });

  test('multi-frame MONOCHROME1 is inverted per frame', async () => {
    const image = await readDicom(path.join(dir, 'multiframe_monochrome1_u8.dcm'));
    const perFrame = image.rows * image.columns;
    const ranges = [0, 1, 2].map((f) => {
      const frame = image.pixels.subarray(f * perFrame, (f + 1) * perFrame);
      return [Math.min(...frame), Math.max(...frame)];
    });
    // Each frame keeps its own range, which a single min + max over the file would shift.
    expect(new Set(ranges.map(([lo, hi]) => `${lo},${hi}`)).size).toBe(3);
  });

  test('decodeDicom accepts a misaligned Uint8Array and a meta group without preamble', async () => {
    const file = path.join(dir, 'implicit_s16.dcm');
    const bytes = fs.readFileSync(file);
    const reference = await readDicom(file);
    const misaligned = new Uint8Array(new ArrayBuffer(bytes.length + 1), 1, bytes.length);
    misaligned.set(bytes);
    expect(decodeDicom(misaligned, 'misaligned.dcm').pixels).toEqual(reference.pixels);
    const noPreamble = decodeDicom(bytes.subarray(132), 'no-preamble.dcm');
    expect(noPreamble.transferSyntax).toBe('1.2.840.10008.1.2');
    expect(noPreamble.pixels).toEqual(reference.pixels);
  });
});

describe('DICOM errors', () => {
  test.each(ERRORS)('%s is rejected with a specific code naming the file', async (name) => {
    const e = manifest.errors.find((x) => x.name === name) as ErrorEntry;
    const error = await rejection(readDicom(path.join(dir, e.file)));
    expect(error.code).toBe(e.code);
    for (const word of e.messageContains) expect(error.message).toContain(word);
  });

  test('a compressed file still has a readable header', async () => {
    const header = await readDicomHeader(path.join(dir, 'jpeg_baseline.dcm'));
    expect(header.transferSyntax).toBe('1.2.840.10008.1.2.4.50');
    expect([header.rows, header.columns]).toEqual([17, 23]);
  });

  test('truncated copies of valid files are invalid', async () => {
    const cases: [string, number][] = [
      ['explicit_u16_bs12.dcm', -101], // inside the pixel data, explicit VR
      ['implicit_s16.dcm', -101], // inside the pixel data, implicit VR (dicom-parser does not notice)
      ['explicit_u16_bs12.dcm', 200], // inside the file meta group
      ['implicit_s16.dcm', 400], // inside the dataset
      ['explicit_u16_bs12.dcm', 0], // empty
    ];
    for (const [name, keep] of cases) {
      const bytes = fs.readFileSync(path.join(dir, name));
      const file = path.join(dir, `truncated-${keep}-${name}`);
      fs.writeFileSync(file, bytes.subarray(0, keep < 0 ? bytes.length + keep : keep));
      const error = await rejection(readDicom(file));
      expect({ keep, name, code: error.code }).toEqual({ keep, name, code: 'ERR_DICOM_INVALID' });
      expect(error.message).toContain(file);
    }
  });

  test('a text file is not DICOM', async () => {
    const file = path.join(dir, 'notes.dcm');
    fs.writeFileSync(file, 'Patient notes: sagittal T2, L4/L5 moderate stenosis.\n'.repeat(5));
    for (const error of [await rejection(readDicom(file)), await rejection(readDicomHeader(file))]) {
      expect(error.code).toBe('ERR_DICOM_INVALID');
      expect(error.message).toContain(file);
      expect(error.message).toMatch(/not a DICOM file/);
    }
  });

  test('arguments of the wrong type are ERR_INVALID_ARG', async () => {
    expect(() => decodeDicom('bytes' as unknown as Uint8Array, 'x.dcm')).toThrow(/Expected a Uint8Array/);
    expect((await rejection(readDicom(42 as unknown as string))).code).toBe('ERR_INVALID_ARG');
  });

  test('a missing path is ERR_DICOM_MISSING', async () => {
    const file = path.join(dir, 'nowhere', '404.dcm');
    for (const error of [await rejection(readDicom(file)), await rejection(readDicomHeader(file))]) {
      expect(error.code).toBe('ERR_DICOM_MISSING');
      expect(error.message).toContain(file);
    }
  });
});

describe('orderInstances', () => {
  async function series(): Promise<{ name: string; header: DicomHeader }[]> {
    const folder = path.join(dir, manifest.series.folder);
    // Reverse file-name string order (2, 10, 1, 9 after reversal of 1, 10, 2, 9), so no input order is kept.
    const names = fs.readdirSync(folder).sort().reverse();
    return Promise.all(
      names.map(async (name) => ({ name, header: await readDicomHeader(path.join(folder, name)) })),
    );
  }

  test('by position along the slice normal, not by file name or instance number', async () => {
    const items = await series();
    const before = items.map((i) => i.name);
    expect(orderInstances(items).map((i) => i.name)).toEqual(manifest.series.order);
    expect(manifest.series.order).toEqual(['9.dcm', '1.dcm', '10.dcm', '2.dcm']);
    expect(items.map((i) => i.name)).toEqual(before);
  });

  test('falls back to InstanceNumber, then to the numeric file name', async () => {
    const items = await series();
    const noPosition = items.map((i) => ({ ...i, header: { ...i.header, imagePositionPatient: null } }));
    expect(orderInstances(noPosition).map((i) => i.name)).toEqual(['1.dcm', '9.dcm', '10.dcm', '2.dcm']);
    const noInstance = noPosition.map((i) => ({ ...i, header: { ...i.header, instanceNumber: null } }));
    expect(orderInstances(noInstance).map((i) => i.name)).toEqual(['1.dcm', '2.dcm', '9.dcm', '10.dcm']);
  });

  test('one instance without a position makes the whole set fall back', async () => {
    const items = await series();
    items[0] = { ...items[0], header: { ...items[0].header, imagePositionPatient: null } };
    expect(orderInstances(items).map((i) => i.name)).toEqual(['1.dcm', '9.dcm', '10.dcm', '2.dcm']);
  });
});
