import os from 'node:os';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { LIMITS } from '../limits';
import { DEVICE_PATTERN } from '../runtime';

/** A real boolean flag value: true/false, 1/0, yes/no, on/off. */
export function parseBoolean(value: string): boolean {
  const v = value.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  throw new InvalidArgumentError(`expected true/false, 1/0 or yes/no, got '${value}'`);
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
  }
  return n;
}

export function parseNonNegativeInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError(`expected an integer >= 0, got '${value}'`);
  }
  return n;
}

export function parseNonNegativeNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) {
    throw new InvalidArgumentError(`expected a number >= 0, got '${value}'`);
  }
  return n;
}

export function parsePositiveNumber(value: string): number {
  const n = parseNonNegativeNumber(value);
  if (n === 0) throw new InvalidArgumentError(`expected a number > 0, got '${value}'`);
  return n;
}

/** A parser of numbers in [min, max] (or [min, max) when maxExclusive), for flags whose range is known. */
export function numberInRange(min: number, max: number, maxExclusive = false): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min || (maxExclusive ? n >= max : n > max)) {
      throw new InvalidArgumentError(
        `expected a number in [${min}, ${max}${maxExclusive ? ')' : ']'}, got '${value}'`,
      );
    }
    return n;
  };
}

/** A parser of integers in [min, max], for flags whose range the library enforces (see LIMITS). */
export function integerInRange(range: { min: number; max: number }): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < range.min || n > range.max) {
      throw new InvalidArgumentError(`expected an integer in [${range.min}, ${range.max}], got '${value}'`);
    }
    return n;
  };
}

/** A parser of numbers in (0, max]: positive, and no larger than the library accepts (see LIMITS). */
export function positiveNumberUpTo(max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || n > max) {
      throw new InvalidArgumentError(`expected a number in (0, ${max}], got '${value}'`);
    }
    return n;
  };
}

/**
 * The most libtorch threads a flag may ask for: 4 times the cores this process may use (more only contend for
 * the same cores), and never more than setNumThreads accepts.
 */
export function maxThreads(): number {
  return Math.min(LIMITS.threads.max, 4 * os.availableParallelism());
}

/** --threads: an integer in [1, maxThreads()]. */
export function parseThreads(value: string): number {
  const max = maxThreads();
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < LIMITS.threads.min || n > max) {
    throw new InvalidArgumentError(
      `expected an integer in [${LIMITS.threads.min}, ${max}] (at most 4 times the ` +
        `${os.availableParallelism()} cores here), got '${value}'`,
    );
  }
  return n;
}

/** Three loss weights "w0,w1,w2" (normal/mild, moderate, severe): numbers >= 0, at least one positive. */
export function parseClassWeights(value: string): [number, number, number] {
  const parts = value.split(',').map((part) => part.trim());
  const weights = parts.map(Number);
  if (
    parts.length !== 3 ||
    parts.some((p) => p === '') ||
    weights.some((w) => !Number.isFinite(w) || w < LIMITS.classWeight.min || w > LIMITS.classWeight.max)
  ) {
    throw new InvalidArgumentError(
      `expected three numbers in [${LIMITS.classWeight.min}, ${LIMITS.classWeight.max}] such as 1,2,4, ` +
        `got '${value}'`,
    );
  }
  if (weights.every((w) => w === 0))
    throw new InvalidArgumentError(`expected a positive weight, got '${value}'`);
  return weights as [number, number, number];
}

/** cpu, cuda or cuda:N (whether that device exists is checked when the run starts). */
export function parseDevice(value: string): string {
  if (!DEVICE_PATTERN.test(value))
    throw new InvalidArgumentError(`expected cpu, cuda or cuda:N, got '${value}'`);
  return value;
}

/** A flag that takes one of a fixed set of values, with its default. */
export function choiceOption(
  flags: string,
  description: string,
  choices: readonly string[],
  fallback: string,
): Option {
  return new Option(flags, description).choices(choices).default(fallback);
}

/**
 * Accepts the reference's snake_case flags as well as kebab-case: rewrites --batch_size=32 and --batch_size 32
 * to --batch-size before commander parses them.
 */
export function normalizeFlagSpelling(argv: readonly string[]): string[] {
  return argv.map((arg) => {
    if (!arg.startsWith('--')) return arg;
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    return name.replace(/_/g, '-') + (eq === -1 ? '' : arg.slice(eq));
  });
}

/**
 * Parses argv (as process.argv) with snake_case flags accepted; returns commander's exit code (help, bad flag)
 * instead of exiting, or null when the command should run.
 */
export function parseArgv(command: Command, argv: readonly string[]): number | null {
  command.exitOverride();
  try {
    command.parse(normalizeFlagSpelling(argv));
  } catch (error) {
    const code = (error as { exitCode?: number }).exitCode;
    return typeof code === 'number' ? code : 2;
  }
  return null;
}

/** Prints an error as one line with its code, for the commands' exit paths. */
export function printError(error: unknown): void {
  const err = error as { code?: string; message?: string };
  process.stderr.write(`error: ${err.message ?? String(error)}${err.code ? ` (${err.code})` : ''}\n`);
}
