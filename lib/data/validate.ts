import { readDicom } from './dicom';
import type { DataProblem, Sample } from './samples';

/**
 * Reads every sample's image once, before training, so that all unreadable files (missing, truncated, not DICOM,
 * no pixels, compressed) are reported together rather than one per failed run. The decoded pixels are not kept.
 */
export async function validateSamples(
  samples: readonly Sample[],
  onProgress?: (done: number, total: number) => void,
): Promise<{ valid: Sample[]; problems: DataProblem[] }> {
  const byFile = new Map<string, Sample[]>();
  for (const sample of samples)
    byFile.set(sample.imagePath, [...(byFile.get(sample.imagePath) ?? []), sample]);
  const bad = new Map<string, string>();
  let done = 0;
  const files = [...byFile.keys()];
  // A few reads in flight keep the disk busy without holding many decoded images at once.
  const width = 8;
  for (let i = 0; i < files.length; i += width) {
    await Promise.all(
      files.slice(i, i + width).map(async (file) => {
        try {
          await readDicom(file);
        } catch (error) {
          bad.set(file, (error as Error).message);
        }
      }),
    );
    done = Math.min(files.length, i + width);
    onProgress?.(done, files.length);
  }
  const problems: DataProblem[] = [];
  for (const [file, message] of bad) {
    const rows = (byFile.get(file) ?? []).map((s) => s.rowId).join(', ');
    problems.push({ kind: 'unreadable-image', where: file, message: `${message} (used by ${rows})` });
  }
  return { valid: samples.filter((s) => !bad.has(s.imagePath)), problems };
}

/** One message listing problems (the first `limit` in full, then a count), for errors and reports. */
export function describeProblems(problems: readonly DataProblem[], limit = 20): string {
  const lines = problems.slice(0, limit).map((p) => `  - ${p.where}: ${p.message}`);
  if (problems.length > limit) lines.push(`  ... and ${problems.length - limit} more`);
  return lines.join('\n');
}
