import fs from 'node:fs';
import path from 'node:path';
import { StenosisError } from '../errors';
import type { NativeAddon } from './types';

const PACKAGE_NAME = 'lumbar-stenosis';

/** The package's root folder: the nearest parent holding this package's package.json. */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest)) {
      try {
        if (JSON.parse(fs.readFileSync(manifest, 'utf8')).name === PACKAGE_NAME) return dir;
      } catch {
        // An unreadable package.json is not ours; keep looking upwards.
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve(__dirname, '..', '..');
    dir = parent;
  }
}

/** Where the compiled addon is looked for: STENOSIS_ADDON_PATH, else build/Release/stenosis.node. */
export function addonPath(): string {
  return process.env.STENOSIS_ADDON_PATH ?? path.join(packageRoot(), 'build', 'Release', 'stenosis.node');
}

function loadFailure(file: string, cause: unknown): StenosisError {
  // The addon loaded but refused its settings (e.g. a malformed STENOSIS_CPU_CACHE_MB): its own error says why.
  if (cause instanceof Error && (cause as { code?: unknown }).code === 'ERR_INVALID_ARG') {
    return new StenosisError('ERR_INVALID_ARG', cause.message);
  }
  const reason = cause instanceof Error ? cause.message : String(cause);
  const lines = [`The ${PACKAGE_NAME} native addon could not be loaded from ${file}.`];
  if (!fs.existsSync(file)) {
    lines.push(
      'It has not been built. Likely fixes:',
      '  - install libtorch and the other system packages: bash scripts/install-system-deps.sh (Debian/Ubuntu)',
      `  - build it: npm rebuild ${PACKAGE_NAME} (in this package's own checkout: npm install)`,
      `  - if npm skipped its install script: npm install-scripts approve ${PACKAGE_NAME}, ` +
        `then npm rebuild ${PACKAGE_NAME}`,
    );
  } else if (/libtorch|libc10|libtorch_cpu|\.so/.test(reason)) {
    lines.push(
      `libtorch itself failed to load: ${reason}`,
      'Likely fixes:',
      '  - install Debian libtorch: bash scripts/install-system-deps.sh',
      `  - or set LIBTORCH to a libtorch folder and rebuild: LIBTORCH=/path/to/libtorch npm rebuild ${PACKAGE_NAME}`,
    );
  } else {
    lines.push(`Reason: ${reason}`, `Rebuild it against this Node.js: npm rebuild ${PACKAGE_NAME}`);
  }
  return new StenosisError('ERR_ADDON_LOAD', lines.join('\n'));
}

let cached: NativeAddon | undefined;

/** Loads the compiled addon once; throws one actionable ERR_ADDON_LOAD error when it cannot. */
export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const file = addonPath();
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cached = require(file) as NativeAddon;
  } catch (error) {
    throw loadFailure(file, error);
  }
  return cached;
}
