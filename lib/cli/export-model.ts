import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { StenosisError } from '../errors';
import { packageRoot } from '../native/loader';
import { parseArgv, printError } from './options';

/** The interpreter that runs the export: STENOSIS_PYTHON, else Debian's, which has python3-torch. */
export function exportPython(): string {
  return process.env.STENOSIS_PYTHON ?? '/usr/bin/python3';
}

/** The Python script that does the export, inside this package. */
export function exportScript(): string {
  return path.join(packageRoot(), 'scripts', 'export_trained.py');
}

export function buildCommand(): Command {
  return new Command('export-model.js')
    .description(
      'Export a trained stenosis grader as ONE TorchScript file (backbone + level embedding + head + softmax) ' +
        "that Python's torch.jit.load runs without this package, and NAME.json beside it describing classes, " +
        'levels, input size, normalization and preprocessing. The file is checked against the eager model ' +
        'before it takes its name.',
    )
    .requiredOption(
      '--checkpoint <file>',
      'a checkpoint written by train.js (trained_models/<model>_best.ckpt) or Trainer.save',
    )
    .requiredOption(
      '--out <file>',
      'TorchScript file to write, ending in .pt, e.g. model.pt (model.json goes beside it)',
    )
    .option('--backbone <file>', "backbone TorchScript file (default: the checkpoint's user.backbonePath)")
    .addHelpText(
      'after',
      '\nThen, in Python:\n' +
        '  model = torch.jit.load("model.pt")\n' +
        '  probabilities = model(images, levels)  # [B,3,S,S] float32, [B] int64 (0 = L1/L2 .. 4 = L5/S1) -> [B,3]\n' +
        `\nRuns ${exportScript()} with $STENOSIS_PYTHON or /usr/bin/python3 (needs torch).`,
    );
}

interface PythonResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs the interpreter, passing stdout straight through and keeping stderr to judge the outcome. */
function runPython(python: string, args: string[]): Promise<PythonResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => process.stdout.write(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (error) =>
      reject(
        new StenosisError(
          'ERR_PYTHON',
          `cannot run ${python} (${error.message}); set STENOSIS_PYTHON to a python3 that has torch`,
        ),
      ),
    );
    // 'close' rather than 'exit': it comes after both pipes are drained, so no output is lost.
    child.on('close', (code, signal) =>
      resolve({ code, signal, stderr: Buffer.concat(stderr).toString('utf8') }),
    );
  });
}

/** Checks the inputs that Node can check itself, so the common mistakes fail without starting Python. */
function checkInputs(checkpoint: string, backbone: string | undefined, out: string): void {
  if (fs.statSync(out, { throwIfNoEntry: false })?.isDirectory()) {
    throw new StenosisError(
      'ERR_INVALID_ARG',
      `--out ${out} is a folder; give the TorchScript file to write, e.g. ${path.join(out, 'model.pt')}`,
    );
  }
  if (path.extname(out) !== '.pt') {
    throw new StenosisError(
      'ERR_INVALID_ARG',
      `--out ${out}: the export is a TorchScript file, so its name must end in .pt ` +
        '(NAME.json describing it goes beside it)',
    );
  }
  if (!fs.existsSync(checkpoint) || !fs.statSync(checkpoint).isFile()) {
    throw new StenosisError('ERR_CHECKPOINT', `checkpoint not found: ${checkpoint} (--checkpoint)`);
  }
  if (backbone !== undefined && (!fs.existsSync(backbone) || !fs.statSync(backbone).isFile())) {
    throw new StenosisError('ERR_MODEL_FILE', `backbone not found: ${backbone} (--backbone)`);
  }
}

/** Runs the export-model command on argv (as process.argv); resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const command = buildCommand();
  const exit = parseArgv(command, argv);
  if (exit !== null) return exit;
  const options = command.opts() as { checkpoint: string; out: string; backbone?: string };
  const checkpoint = path.resolve(options.checkpoint);
  const out = path.resolve(options.out);
  const backbone = options.backbone === undefined ? undefined : path.resolve(options.backbone);
  try {
    checkInputs(checkpoint, backbone, out);
    const python = exportPython();
    const args = [exportScript(), '--checkpoint', checkpoint, '--out', out];
    if (backbone !== undefined) args.push('--backbone', backbone);
    const result = await runPython(python, args);
    const lines = result.stderr.split('\n').filter((line) => line.trim() !== '');
    if (result.code === 0) {
      // Warnings from torch on success are worth seeing but change nothing.
      if (lines.length > 0) process.stderr.write(result.stderr);
      return 0;
    }
    const last = lines.at(-1) ?? '';
    if (last.startsWith('error: ')) {
      // An expected failure: the script already wrote one line naming the file.
      throw new StenosisError('ERR_EXPORT', last.slice('error: '.length));
    }
    // A crash: keep the traceback for whoever debugs it, then sum it up in one line.
    process.stderr.write(result.stderr);
    const how = result.signal ? `was killed by ${result.signal}` : `exited with status ${result.code}`;
    throw new StenosisError(
      'ERR_EXPORT',
      `exporting ${checkpoint} to ${out} failed: ${python} ${how}${last ? `: ${last.trim()}` : ''}`,
    );
  } catch (error) {
    printError(error);
    return 1;
  }
}
