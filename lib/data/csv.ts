import fs from 'node:fs';
import { parse } from 'csv-parse/sync';
import { StenosisError } from '../errors';

export type CsvRow = Record<string, string>;

/**
 * Reads a CSV with a header row into objects (cells trimmed, BOM and blank lines ignored), checking that the
 * required columns exist. `what` names the file's role in the error messages.
 */
export function readCsvRows(file: string, required: readonly string[], what: string): CsvRow[] {
  if (!fs.existsSync(file)) throw new StenosisError('ERR_DATA', `${file} does not exist (expected ${what})`);
  let rows: CsvRow[];
  try {
    rows = parse(fs.readFileSync(file, 'utf8'), {
      columns: true,
      skip_empty_lines: true,
      trim: true,
      bom: true,
    });
  } catch (error) {
    throw new StenosisError('ERR_DATA', `${file} is not valid CSV: ${(error as Error).message}`);
  }
  const header = rows.length > 0 ? Object.keys(rows[0]) : [];
  const missing = required.filter((column) => rows.length > 0 && !header.includes(column));
  if (missing.length > 0) {
    throw new StenosisError(
      'ERR_DATA',
      `${file} lacks column(s) ${missing.join(', ')}; it has ${header.join(', ')}`,
    );
  }
  return rows;
}
