import { readDicom, type DicomHeader } from './dicom';
import type { CropOptions } from './loader';
import type { DataProblem, Sample } from './samples';

/**
 * Why a sample cannot be cropped as asked, or null when it can (or has no x/y, or no crop is asked for): a crop
 * in millimetres needs a positive PixelSpacing, and the x/y must lie in the image (0 <= x <= columns,
 * 0 <= y <= rows), which is known only once the file is read.
 */
export function cropProblem(
  sample: Sample,
  image: Pick<DicomHeader, 'rows' | 'columns' | 'pixelSpacing'>,
  crop: CropOptions | null,
): { kind: 'bad-coordinate' | 'no-pixel-spacing'; message: string } | null {
  if (!crop || sample.x === null || sample.y === null) return null;
  const spacing = image.pixelSpacing;
  if (crop.unit === 'mm' && !(spacing && spacing.every((v) => Number.isFinite(v) && v > 0))) {
    return {
      kind: 'no-pixel-spacing',
      message:
        `${sample.imagePath} has ${spacing ? `PixelSpacing ${spacing.join('\\')}` : 'no PixelSpacing'}: ` +
        'crop in mm needs PixelSpacing (0028,0030); use --crop_px',
    };
  }
  if (sample.x > image.columns || sample.y > image.rows) {
    return {
      kind: 'bad-coordinate',
      message:
        `x=${sample.x}, y=${sample.y} lies outside ${sample.imagePath} ` +
        `(${image.columns} columns x ${image.rows} rows)${sample.source ? ` (${sample.source})` : ''}`,
    };
  }
  return null;
}

/**
 * Reads every sample's image once, before training, so that all unusable samples are reported together rather
 * than one per failed run: unreadable files (missing, truncated, not DICOM, no pixels, compressed), and with a
 * crop, x/y outside the image and (in mm) images without PixelSpacing. The decoded pixels are not kept.
 */
export async function validateSamples(
  samples: readonly Sample[],
  onProgress?: (done: number, total: number) => void,
  crop: CropOptions | null = null,
): Promise<{ valid: Sample[]; problems: DataProblem[] }> {
  const byFile = new Map<string, Sample[]>();
  for (const sample of samples)
    byFile.set(sample.imagePath, [...(byFile.get(sample.imagePath) ?? []), sample]);
  const problems: DataProblem[] = [];
  const bad = new Set<Sample>();
  const rowsOf = (list: readonly Sample[]) => list.map((s) => s.rowId).join(', ');
  let done = 0;
  const files = [...byFile.keys()];
  // A few reads in flight keep the disk busy without holding many decoded images at once.
  const width = 8;
  for (let i = 0; i < files.length; i += width) {
    await Promise.all(
      files.slice(i, i + width).map(async (file) => {
        const users = byFile.get(file) ?? [];
        let image;
        try {
          image = await readDicom(file);
        } catch (error) {
          problems.push({
            kind: 'unreadable-image',
            where: file,
            message: `${(error as Error).message} (used by ${rowsOf(users)})`,
          });
          for (const sample of users) bad.add(sample);
          return;
        }
        const spacingless = users.filter((s) => cropProblem(s, image, crop)?.kind === 'no-pixel-spacing');
        if (spacingless.length > 0) {
          const { message } = cropProblem(spacingless[0], image, crop)!;
          problems.push({
            kind: 'no-pixel-spacing',
            where: file,
            message: `${message} (used by ${rowsOf(spacingless)})`,
          });
        }
        for (const sample of users) {
          const problem = cropProblem(sample, image, crop);
          if (problem?.kind === 'bad-coordinate')
            problems.push({
              kind: problem.kind,
              where: sample.source ?? file,
              message: `${problem.message} (${sample.rowId})`,
            });
          if (problem) bad.add(sample);
        }
      }),
    );
    done = Math.min(files.length, i + width);
    onProgress?.(done, files.length);
  }
  return { valid: samples.filter((s) => !bad.has(s)), problems };
}

/** One message listing problems (the first `limit` in full, then a count), for errors and reports. */
export function describeProblems(problems: readonly DataProblem[], limit = 20): string {
  const lines = problems.slice(0, limit).map((p) => `  - ${p.where}: ${p.message}`);
  if (problems.length > limit) lines.push(`  ... and ${problems.length - limit} more`);
  return lines.join('\n');
}
