/** Error raised by this package. `code` is stable and can be matched on (e.g. `ERR_MODEL_FILE`). */
export class StenosisError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = 'StenosisError';
    this.code = code;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  if (typeof value === 'string')
    return `'${value.length > 60 ? value.slice(0, 57) + '...' : value}' (string)`;
  if (typeof value === 'object') return 'an object';
  return `${String(value)} (${typeof value})`;
}

/** An ERR_INVALID_ARG error reading "Expected WHAT for NAME but received VALUE". */
export function invalidArgument(expected: string, name: string, value: unknown): StenosisError {
  return new StenosisError(
    'ERR_INVALID_ARG',
    `Expected ${expected} for ${name} but received ${describe(value)}`,
  );
}

export function isPlainObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

export function checkInteger(
  value: unknown,
  name: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    throw invalidArgument(`an integer ${range}`, name, value);
  }
  return value;
}

export function checkNumber(
  value: unknown,
  name: string,
  min: number,
  max: number,
  maxExclusive = false,
): number {
  const inRange =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    value >= min &&
    (maxExclusive ? value < max : value <= max);
  if (!inRange) {
    throw invalidArgument(`a number in [${min}, ${max}${maxExclusive ? ')' : ']'}`, name, value);
  }
  return value as number;
}

export function checkBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidArgument('a boolean', name, value);
  return value;
}

export function checkOneOf<T extends string>(value: unknown, name: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw invalidArgument(`one of ${allowed.join(', ')}`, name, value);
  }
  return value as T;
}

/** Rejects option keys the function does not know, so that a typo is not silently ignored. */
export function checkKnownKeys(options: object, name: string, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new StenosisError(
        'ERR_INVALID_ARG',
        `Unknown option '${key}' in ${name}; expected one of ${known.join(', ')}`,
      );
    }
  }
}

/** Copies the `code` of a native error onto a StenosisError, keeping its message. */
export function fromNative(error: unknown): StenosisError {
  if (error instanceof StenosisError) return error;
  const err = error as { code?: unknown; message?: unknown };
  const code = typeof err?.code === 'string' ? err.code : 'ERR_NATIVE';
  const message = typeof err?.message === 'string' ? err.message : String(error);
  return new StenosisError(code, message);
}

/** Awaits a native promise, converting its rejection into a StenosisError. */
export async function native<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (error) {
    throw fromNative(error);
  }
}
