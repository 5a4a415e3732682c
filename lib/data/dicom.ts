import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDicom, type DataSet, type Element } from 'dicom-parser';
import { invalidArgument, StenosisError } from '../errors';

/** What `readDicomHeader` returns: everything about an instance except its pixels. */
export interface DicomHeader {
  /** The path the instance was read from (or the name given to `decodeDicom`). */
  file: string;
  /** Transfer syntax UID; for a raw dataset without file meta group, the one its first element implies. */
  transferSyntax: string;
  rows: number;
  columns: number;
  /** NumberOfFrames, 1 when absent. */
  frames: number;
  photometricInterpretation: string;
  bitsAllocated: number;
  bitsStored: number;
  pixelRepresentation: number;
  /** PixelSpacing in mm: [between rows (vertical), between columns (horizontal)]. */
  pixelSpacing: [number, number] | null;
  instanceNumber: number | null;
  imagePositionPatient: [number, number, number] | null;
  /** ImageOrientationPatient: direction cosines of the first row, then of the first column. */
  imageOrientationPatient: number[] | null;
  seriesDescription: string | null;
  studyInstanceUid: string | null;
  seriesInstanceUid: string | null;
}

/** A decoded greyscale instance. */
export interface DicomImage extends DicomHeader {
  /**
   * Modality values (stored values masked to BitsStored, sign-extended when signed, then
   * RescaleSlope * v + RescaleIntercept), with MONOCHROME1 inverted so that higher is brighter:
   * v' = (min + max) - v, with min and max taken over the rescaled values of the same frame, so that each frame
   * keeps its range. Frame-major then row-major, length frames * rows * columns.
   */
  pixels: Float32Array;
}

const IMPLICIT_LE = '1.2.840.10008.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const DEFLATED_LE = '1.2.840.10008.1.2.1.99';
const EXPLICIT_BE = '1.2.840.10008.1.2.2';

/** Native (uncompressed) transfer syntaxes: the only ones whose pixel data is a plain array of stored values. */
const NATIVE_SYNTAXES = new Set([IMPLICIT_LE, EXPLICIT_LE, DEFLATED_LE, EXPLICIT_BE]);

/** Names of the encapsulated transfer syntaxes, for the message that rejects them. */
const SYNTAX_NAMES: Record<string, string> = {
  '1.2.840.10008.1.2.1.98': 'Encapsulated Uncompressed Explicit VR Little Endian',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline (Process 1)',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (Process 2 & 4)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless, Non-Hierarchical (Process 14)',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [SV1])',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Lossy (Near-Lossless)',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000 Image Compression',
  '1.2.840.10008.1.2.4.92': 'JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.93': 'JPEG 2000 Part 2 Multi-component Image Compression',
  '1.2.840.10008.1.2.4.100': 'MPEG2 Main Profile / Main Level',
  '1.2.840.10008.1.2.4.101': 'MPEG2 Main Profile / High Level',
  '1.2.840.10008.1.2.4.102': 'MPEG-4 AVC/H.264 High Profile / Level 4.1',
  '1.2.840.10008.1.2.4.103': 'MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1',
  '1.2.840.10008.1.2.4.110': 'JPEG XL Lossless',
  '1.2.840.10008.1.2.4.111': 'JPEG XL JPEG Recompression',
  '1.2.840.10008.1.2.4.112': 'JPEG XL',
  '1.2.840.10008.1.2.4.201': 'High-Throughput JPEG 2000 Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.202': 'High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.203': 'High-Throughput JPEG 2000 Image Compression',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

const PIXEL_DATA = 'x7fe00010';
/** The header reader's first read; a typical MR header is 2-10 KiB, so one read almost always suffices. */
const HEADER_CHUNK = 64 * 1024;
const HOST_LITTLE_ENDIAN = os.endianness() === 'LE';
const VRS = new Set(
  'AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV'.split(
    ' ',
  ),
);

function fail(code: string, file: string, message: string): StenosisError {
  return new StenosisError(code, `DICOM file ${file}: ${message}`);
}

/** dicom-parser throws strings, Errors, or `{ exception, dataSet }` wrappers; this digs out the text. */
function parserMessage(error: unknown): string {
  if (typeof error === 'string') return error;
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error !== null && 'exception' in error) {
    return parserMessage((error as { exception: unknown }).exception);
  }
  return String(error);
}

function ioError(error: unknown, file: string): StenosisError {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return fail('ERR_DICOM_MISSING', file, 'no such file (expected a DICOM file at this path)');
  }
  if (code === 'EISDIR') return fail('ERR_DICOM_INVALID', file, 'is a directory, expected a DICOM file');
  return fail('ERR_DICOM_READ', file, `cannot be read: ${(error as Error)?.message ?? String(error)}`);
}

function tagName(tag: string): string {
  return `(${tag.slice(1, 5).toUpperCase()},${tag.slice(5).toUpperCase()})`;
}

function hasDicmPrefix(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 132 &&
    bytes[128] === 0x44 &&
    bytes[129] === 0x49 &&
    bytes[130] === 0x43 &&
    bytes[131] === 0x4d
  );
}

/**
 * For a file without the 128-byte preamble and 'DICM', the transfer syntax its first element implies (explicit
 * VR when bytes 4-5 spell a VR, else implicit, the DICOM default), or null when it does not start like a dataset:
 * an even group no later than the image pixel module (0028), and a length that fits in the file.
 */
function sniffRawDataset(bytes: Uint8Array): string | null {
  if (bytes.length < 8) return null;
  const group = bytes[0] | (bytes[1] << 8);
  if (group % 2 !== 0 || group > 0x0028) return null;
  const vr = String.fromCharCode(bytes[4], bytes[5]);
  if (VRS.has(vr)) return EXPLICIT_LE;
  const length = (bytes[4] | (bytes[5] << 8) | (bytes[6] << 16)) + bytes[7] * 2 ** 24;
  if (length !== 0xffffffff && length > bytes.length - 8) return null;
  return IMPLICIT_LE;
}

interface Parsed {
  dataSet: DataSet;
  transferSyntax: string;
}

/**
 * Parses up to (not into) the pixel data element. Throws ERR_DICOM_INVALID for anything dicom-parser rejects or
 * any element that runs past the end of the bytes (dicom-parser does not notice that in implicit VR).
 */
function parse(bytes: Uint8Array, file: string): Parsed {
  // dicom-parser's deflate path calls Buffer#copy; a view shares the memory, so this costs nothing.
  let buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let rawSyntax: string | undefined;
  if (!hasDicmPrefix(buffer)) {
    const group = buffer.length >= 2 ? buffer[0] | (buffer[1] << 8) : -1;
    if (group === 0x0002) {
      // A file meta group without the preamble: give it one so that dicom-parser reads the meta group as such.
      buffer = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), buffer]);
    } else {
      rawSyntax = sniffRawDataset(buffer) ?? undefined;
      if (rawSyntax === undefined) {
        throw fail(
          'ERR_DICOM_INVALID',
          file,
          `not a DICOM file (expected 'DICM' at byte 128, or a raw dataset starting with an even group ` +
            `tag; the file has ${buffer.length} bytes)`,
        );
      }
    }
  }
  let dataSet: DataSet;
  try {
    dataSet = parseDicom(buffer, {
      untilTag: PIXEL_DATA,
      ...(rawSyntax === undefined ? {} : { TransferSyntaxUID: rawSyntax }),
    });
  } catch (error) {
    throw fail(
      'ERR_DICOM_INVALID',
      file,
      `truncated or not DICOM (dicom-parser: ${parserMessage(error)}; expected a complete DICOM file)`,
    );
  }
  const end = dataSet.byteArray.length;
  for (const element of Object.values(dataSet.elements)) {
    if (element.tag === PIXEL_DATA || element.hadUndefinedLength || element.dataOffset === undefined)
      continue;
    if (element.dataOffset + element.length > end) {
      throw fail(
        'ERR_DICOM_INVALID',
        file,
        `truncated: element ${tagName(element.tag)} needs ${element.length} bytes at offset ` +
          `${element.dataOffset} but the data ends at ${end}`,
      );
    }
  }
  const transferSyntax = dataSet.string('x00020010') ?? rawSyntax ?? '';
  return { dataSet, transferSyntax };
}

function optionalNumber(value: number | undefined): number | null {
  return value === undefined || !Number.isFinite(value) ? null : value;
}

/** The `count` numbers of a multi-valued DS element, or null when absent or not all numeric. */
function floats(dataSet: DataSet, tag: string, count?: number): number[] | null {
  const n = dataSet.numStringValues(tag);
  if (n === undefined || n === 0 || (count !== undefined && n !== count)) return null;
  const values: number[] = [];
  for (let i = 0; i < n; i++) {
    const value = dataSet.floatString(tag, i);
    if (value === undefined || !Number.isFinite(value)) return null;
    values.push(value);
  }
  return values;
}

function requiredUint16(dataSet: DataSet, tag: string, name: string, file: string): number {
  const value = dataSet.uint16(tag);
  if (value === undefined) {
    throw fail(
      'ERR_DICOM_INVALID',
      file,
      `${name} ${tagName(tag)} is missing (expected an image pixel module)`,
    );
  }
  return value;
}

function headerOf({ dataSet, transferSyntax }: Parsed, file: string): DicomHeader {
  const rows = dataSet.uint16('x00280010');
  const columns = dataSet.uint16('x00280011');
  if (!rows || !columns) {
    throw fail(
      'ERR_DICOM_NO_PIXELS',
      file,
      `no image: Rows (0028,0010) and Columns (0028,0011) must be present and non-zero ` +
        `(got ${rows ?? 'none'} and ${columns ?? 'none'})`,
    );
  }
  const bitsAllocated = requiredUint16(dataSet, 'x00280100', 'BitsAllocated', file);
  const pixelRepresentation = requiredUint16(dataSet, 'x00280103', 'PixelRepresentation', file);
  const framesText = dataSet.string('x00280008');
  const frames = framesText === undefined || framesText === '' ? 1 : Number(framesText);
  if (!Number.isInteger(frames) || frames < 1) {
    throw fail(
      'ERR_DICOM_INVALID',
      file,
      `NumberOfFrames (0028,0008) is '${framesText}', expected an integer >= 1`,
    );
  }
  const spacing = floats(dataSet, 'x00280030', 2);
  const position = floats(dataSet, 'x00200032', 3);
  return {
    file,
    transferSyntax,
    rows,
    columns,
    frames,
    // Type 1, but some writers leave it out of single-sample images: MONOCHROME2 is the only sensible reading.
    photometricInterpretation: dataSet.string('x00280004') || 'MONOCHROME2',
    bitsAllocated,
    bitsStored: dataSet.uint16('x00280101') ?? bitsAllocated,
    pixelRepresentation,
    pixelSpacing: spacing && [spacing[0], spacing[1]],
    instanceNumber: optionalNumber(dataSet.intString('x00200013')),
    imagePositionPatient: position && [position[0], position[1], position[2]],
    imageOrientationPatient: floats(dataSet, 'x00200037', 6),
    seriesDescription: dataSet.string('x0008103e') ?? null,
    studyInstanceUid: dataSet.string('x0020000d') ?? null,
    seriesInstanceUid: dataSet.string('x0020000e') ?? null,
  };
}

/** Checks what the pixel decoder relies on, before it touches the pixel data. */
function checkDecodable(parsed: Parsed, header: DicomHeader): void {
  const { dataSet, transferSyntax } = parsed;
  const { file } = header;
  if (!NATIVE_SYNTAXES.has(transferSyntax)) {
    const name = SYNTAX_NAMES[transferSyntax] ?? 'unknown transfer syntax';
    throw fail(
      'ERR_DICOM_UNSUPPORTED',
      file,
      `transfer syntax ${transferSyntax} (${name}) is compressed or unknown; only uncompressed ` +
        `(implicit/explicit VR little endian, deflated, explicit big endian) pixel data can be decoded`,
    );
  }
  const samples = dataSet.uint16('x00280002') ?? 1;
  if (samples !== 1) {
    throw fail(
      'ERR_DICOM_UNSUPPORTED',
      file,
      `SamplesPerPixel (0028,0002) is ${samples}: colour images are not supported (expected 1, greyscale)`,
    );
  }
  const photometric = header.photometricInterpretation;
  if (photometric !== 'MONOCHROME1' && photometric !== 'MONOCHROME2') {
    throw fail(
      'ERR_DICOM_UNSUPPORTED',
      file,
      `PhotometricInterpretation (0028,0004) is ${photometric}: expected MONOCHROME1 or MONOCHROME2`,
    );
  }
  const { bitsAllocated, bitsStored, pixelRepresentation } = header;
  if (bitsAllocated !== 8 && bitsAllocated !== 16) {
    throw fail(
      'ERR_DICOM_UNSUPPORTED',
      file,
      `BitsAllocated (0028,0100) is ${bitsAllocated}: expected 8 or 16`,
    );
  }
  if (bitsStored < 1 || bitsStored > bitsAllocated) {
    throw fail(
      'ERR_DICOM_INVALID',
      file,
      `BitsStored (0028,0101) is ${bitsStored}: expected 1 to BitsAllocated (${bitsAllocated})`,
    );
  }
  const highBit = dataSet.uint16('x00280102') ?? bitsStored - 1;
  if (highBit !== bitsStored - 1) {
    throw fail(
      'ERR_DICOM_UNSUPPORTED',
      file,
      `HighBit (0028,0102) is ${highBit}: only stored values in the low bits are supported ` +
        `(expected BitsStored - 1 = ${bitsStored - 1})`,
    );
  }
  if (pixelRepresentation !== 0 && pixelRepresentation !== 1) {
    throw fail(
      'ERR_DICOM_INVALID',
      file,
      `PixelRepresentation (0028,0103) is ${pixelRepresentation}: expected 0 (unsigned) or 1 (signed)`,
    );
  }
  if (dataSet.elements.x00283000 !== undefined) {
    // A lookup table instead of a linear rescale: rare in MR, and silently ignoring it would give wrong values.
    throw fail('ERR_DICOM_UNSUPPORTED', file, 'ModalityLUTSequence (0028,3000) is not supported');
  }
}

/** A typed view of the stored words, copying only when they are byte-swapped or misaligned in the buffer. */
function storedWords(
  byteArray: Uint8Array,
  offset: number,
  count: number,
  bits: number,
  signed: boolean,
  bigEndian: boolean,
): Uint8Array | Int8Array | Uint16Array | Int16Array {
  if (bits === 8) {
    return signed
      ? new Int8Array(byteArray.buffer, byteArray.byteOffset + offset, count)
      : new Uint8Array(byteArray.buffer, byteArray.byteOffset + offset, count);
  }
  let buffer = byteArray.buffer;
  let start = byteArray.byteOffset + offset;
  const swap = bigEndian === HOST_LITTLE_ENDIAN;
  if (swap || start % 2 !== 0) {
    // Outside the shared pool, so the copy starts at offset 0, aligned; every byte is overwritten just below.
    const copy = Buffer.allocUnsafeSlow(2 * count);
    copy.set(byteArray.subarray(offset, offset + 2 * count));
    if (swap) copy.swap16();
    buffer = copy.buffer;
    start = copy.byteOffset;
  }
  return signed ? new Int16Array(buffer, start, count) : new Uint16Array(buffer, start, count);
}

function decodePixels(parsed: Parsed, header: DicomHeader): Float32Array {
  const { dataSet, transferSyntax } = parsed;
  const { file, rows, columns, frames, bitsAllocated, bitsStored } = header;
  const element: Element | undefined = dataSet.elements[PIXEL_DATA];
  if (element === undefined) {
    const float = dataSet.elements.x7fe00008 ?? dataSet.elements.x7fe00009;
    if (float !== undefined) {
      throw fail('ERR_DICOM_UNSUPPORTED', file, `float pixel data ${tagName(float.tag)} is not supported`);
    }
    throw fail('ERR_DICOM_NO_PIXELS', file, 'no pixel data: element PixelData (7FE0,0010) is missing');
  }
  const byteArray = dataSet.byteArray;
  const perFrame = rows * columns;
  const count = perFrame * frames;
  const needed = (count * bitsAllocated) / 8;
  const available = element.hadUndefinedLength
    ? 0
    : Math.max(0, Math.min(element.length, byteArray.length - element.dataOffset));
  if (element.hadUndefinedLength || available < needed) {
    throw fail(
      'ERR_DICOM_INVALID',
      file,
      `pixel data (7FE0,0010) has ${element.hadUndefinedLength ? 'undefined length' : `${available} bytes`}, ` +
        `expected Rows * Columns * NumberOfFrames * BitsAllocated / 8 = ${rows} * ${columns} * ${frames} * ` +
        `${bitsAllocated / 8} = ${needed} bytes` +
        (available < element.length ? ' (the file is truncated)' : ''),
    );
  }
  const signed = header.pixelRepresentation === 1;
  const masked = bitsStored < bitsAllocated;
  // Masking reads the unsigned words: the sign comes from bit BitsStored-1, not from the container's top bit.
  const words = storedWords(
    byteArray,
    element.dataOffset,
    count,
    bitsAllocated,
    signed && !masked,
    transferSyntax === EXPLICIT_BE,
  );
  const slope = optionalNumber(dataSet.floatString('x00281053')) ?? 1;
  const intercept = optionalNumber(dataSet.floatString('x00281052')) ?? 0;
  const rescale = slope !== 1 || intercept !== 0;
  const invert = header.photometricInterpretation === 'MONOCHROME1';

  const out = new Float32Array(count);
  // Stored values first: integers below 2^16, exact in float32, so the rescale below works on exact inputs.
  if (!masked) {
    out.set(words);
  } else if (signed) {
    const shift = 32 - bitsStored;
    for (let i = 0; i < count; i++) out[i] = (words[i] << shift) >> shift;
  } else {
    const mask = (1 << bitsStored) - 1;
    for (let i = 0; i < count; i++) out[i] = words[i] & mask;
  }
  if (!rescale && !invert) return out;

  for (let start = 0; start < count; start += perFrame) {
    const end = start + perFrame;
    if (invert) {
      let min = Infinity;
      let max = -Infinity;
      for (let i = start; i < end; i++) {
        const v = out[i];
        if (v < min) min = v;
        if (v > max) max = v;
      }
      // The rescaled extremes in double precision, as (min + max) - v is computed below: the same arithmetic as
      // pydicom's float64 modality LUT followed by the inversion, so results agree to the last bit.
      const sum = min * slope + intercept + (max * slope + intercept);
      for (let i = start; i < end; i++) out[i] = sum - (out[i] * slope + intercept);
    } else {
      for (let i = start; i < end; i++) out[i] = out[i] * slope + intercept;
    }
  }
  return out;
}

/**
 * Decodes a DICOM instance held in memory: any native transfer syntax (implicit or explicit VR little endian,
 * deflated explicit VR little endian, explicit VR big endian), 8 or 16 bits allocated, signed or unsigned,
 * BitsStored up to BitsAllocated, single or multi-frame greyscale. Files without the 128-byte preamble and
 * 'DICM' are read as raw datasets. `file` is used only in error messages and `DicomImage.file`.
 * @throws StenosisError ERR_DICOM_INVALID (truncated, not DICOM, pixel data too short),
 *   ERR_DICOM_NO_PIXELS, ERR_DICOM_UNSUPPORTED (compressed transfer syntax, colour, HighBit not BitsStored - 1).
 */
export function decodeDicom(bytes: Uint8Array, file: string): DicomImage {
  if (!(bytes instanceof Uint8Array)) throw invalidArgument('a Uint8Array or Buffer', 'bytes', bytes);
  if (typeof file !== 'string') throw invalidArgument('a string', 'file', file);
  const parsed = parse(bytes, file);
  const header = headerOf(parsed, file);
  checkDecodable(parsed, header);
  return { ...header, pixels: decodePixels(parsed, header) };
}

/**
 * Reads and decodes a DICOM file; see `decodeDicom` for what is supported.
 * @throws StenosisError ERR_DICOM_MISSING when there is no such file, plus those of `decodeDicom`.
 */
export async function readDicom(file: string): Promise<DicomImage> {
  if (typeof file !== 'string') throw invalidArgument('a file path (string)', 'file', file);
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (error) {
    throw ioError(error, file);
  }
  return decodeDicom(bytes, file);
}

/** The header of a prefix of a file, or null when the prefix ends before the pixel data element. */
function headerOfPrefix(bytes: Uint8Array, file: string): DicomHeader | null {
  let parsed: Parsed;
  try {
    parsed = parse(bytes, file);
  } catch {
    return null;
  }
  return parsed.dataSet.elements[PIXEL_DATA] === undefined ? null : headerOf(parsed, file);
}

/**
 * Reads the header of a DICOM file without decoding its pixels, for ordering instances quickly: reads the first
 * 64 KiB and parses up to the pixel data element, reading the rest of the file only when the header is longer.
 * Does not check that the pixels are decodable (a compressed or colour instance still has a header).
 * @throws StenosisError ERR_DICOM_MISSING, ERR_DICOM_INVALID, or ERR_DICOM_NO_PIXELS when Rows or Columns is
 *   missing.
 */
export async function readDicomHeader(file: string): Promise<DicomHeader> {
  if (typeof file !== 'string') throw invalidArgument('a file path (string)', 'file', file);
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'r');
  } catch (error) {
    throw ioError(error, file);
  }
  try {
    const { size } = await handle.stat();
    if (size > HEADER_CHUNK) {
      // Unzeroed: only the bytes actually read are looked at.
      const prefix = Buffer.allocUnsafe(HEADER_CHUNK);
      const { bytesRead } = await handle.read(prefix, 0, HEADER_CHUNK, 0);
      const header = headerOfPrefix(prefix.subarray(0, bytesRead), file);
      if (header !== null) return header;
    }
    const bytes = Buffer.allocUnsafe(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await handle.read(bytes, done, size - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return headerOf(parse(bytes.subarray(0, done), file), file);
  } catch (error) {
    throw error instanceof StenosisError ? error : ioError(error, file);
  } finally {
    await handle.close();
  }
}

const NAME_ORDER = new Intl.Collator('en', { numeric: true });

function byFileName(a: DicomHeader, b: DicomHeader): number {
  return (
    NAME_ORDER.compare(path.basename(a.file), path.basename(b.file)) || NAME_ORDER.compare(a.file, b.file)
  );
}

/** The unit normal (row cosines x column cosines) of the first instance with a usable orientation. */
function sliceNormal(headers: DicomHeader[]): [number, number, number] | null {
  for (const { imageOrientationPatient: o } of headers) {
    if (o === null || o.length !== 6) continue;
    const n: [number, number, number] = [
      o[1] * o[5] - o[2] * o[4],
      o[2] * o[3] - o[0] * o[5],
      o[0] * o[4] - o[1] * o[3],
    ];
    const norm = Math.hypot(n[0], n[1], n[2]);
    if (norm > 1e-6) return [n[0] / norm, n[1] / norm, n[2] / norm];
  }
  return null;
}

/**
 * Sorts instances by position along the slice normal (ImagePositionPatient projected on the cross product of
 * the orientation rows), falling back to InstanceNumber, then to the numeric file name — never by file-name
 * string order (10.dcm after 9.dcm).
 *
 * One key is chosen for the whole set, so that the order is consistent: positions when every instance has one
 * and some instance has an orientation (the normal of the first such instance is used for all), else instance
 * numbers when every instance has one, else file names compared with digit runs as numbers. Ties (e.g. echoes
 * at the same position) fall through to the next keys. Ascending along the normal; returns a new array.
 */
export function orderInstances<T extends { header: DicomHeader }>(items: T[]): T[] {
  const headers = items.map((item) => item.header);
  const normal = sliceNormal(headers);
  const byInstance = (a: DicomHeader, b: DicomHeader): number =>
    a.instanceNumber !== null && b.instanceNumber !== null ? a.instanceNumber - b.instanceNumber : 0;
  const keyed = items.map((item) => {
    const p = item.header.imagePositionPatient;
    const along =
      normal !== null && p !== null ? p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2] : null;
    return { item, along };
  });
  const usePosition = keyed.every((k) => k.along !== null);
  const useInstance = headers.every((h) => h.instanceNumber !== null);
  keyed.sort((a, b) => {
    const ha = a.item.header;
    const hb = b.item.header;
    return (
      (usePosition ? (a.along as number) - (b.along as number) : 0) ||
      (useInstance ? byInstance(ha, hb) : 0) ||
      byFileName(ha, hb)
    );
  });
  return keyed.map((k) => k.item);
}
