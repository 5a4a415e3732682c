import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkInteger, StenosisError } from './errors';
import { LIMITS } from './limits';
import { loadAddon, packageRoot } from './native/loader';
import type { CpuCacheStats } from './native/types';

/** Versions of the linked libtorch and of the checkpoint format this build writes. */
export function versions(): { torch: string; cudaBuild: boolean; checkpointFormat: number; package: string } {
  const { torch, cudaBuild, checkpointFormat } = loadAddon().versions;
  const manifest = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as {
    version: string;
  };
  return { torch, cudaBuild, checkpointFormat, package: manifest.version };
}

let threadsSet = false;

/**
 * Sets libtorch's intra-op thread count for all models of this process (it starts with the machine's cores).
 * @throws StenosisError ERR_INVALID_ARG when threads is not a positive integer.
 */
export function setNumThreads(threads: number): void {
  checkInteger(threads, 'threads', LIMITS.threads.min, LIMITS.threads.max);
  loadAddon().setNumThreads(threads);
  threadsSet = true;
}

/** The intra-op thread count libtorch uses. */
export function getNumThreads(): number {
  return loadAddon().getNumThreads();
}

/** Number of CUDA devices the linked libtorch sees (0 on a CPU build). */
export function cudaDeviceCount(): number {
  return loadAddon().cudaDeviceCount();
}

/**
 * The fastest autocast precision that `device` computes natively, what precision 'auto' picks: on the CPU bf16
 * where the processor has AVX512-BF16 or AMX-BF16, else fp32; on CUDA bf16 from compute capability 8.0
 * (Ampere), else fp16.
 * @throws StenosisError ERR_INVALID_DEVICE or ERR_CUDA_UNAVAILABLE for a device that is not valid or absent.
 */
export function preferredPrecision(device: DeviceSpec = 'cpu'): 'fp32' | 'bf16' | 'fp16' {
  return loadAddon().preferredPrecision(checkDevice(device)) as 'fp32' | 'bf16' | 'fp16';
}

/**
 * The caching CPU allocator: libtorch tensors of at least 1 MiB are kept when freed and reused by the next
 * allocation of about their size, so a training step does not fault its activations in from the kernel again at
 * every step. Its limit starts at STENOSIS_CPU_CACHE_MB (MiB; 0 turns it off) or a quarter of the memory
 * available (physical, or a container's cgroup limit when lower), at most 8 GiB.
 */
export function cpuCacheStats(): CpuCacheStats {
  return loadAddon().cpuCacheStats();
}

/**
 * Sets the most free bytes the caching CPU allocator keeps; a lower limit returns free blocks to the system at
 * once, and 0 returns all and keeps none.
 * @throws StenosisError ERR_INVALID_ARG when bytes is not an integer >= 0.
 */
export function setCpuCacheLimit(bytes: number): void {
  loadAddon().setCpuCacheLimit(checkInteger(bytes, 'bytes', 0));
}

/** Whether setNumThreads has been called (the CLI prints the default otherwise). */
export function numThreadsWasSet(): boolean {
  return threadsSet;
}

/** A device string: cpu, cuda or cuda:N. */
export type DeviceSpec = 'cpu' | 'cuda' | `cuda:${number}`;

/** What a device string looks like (whether the device exists is checkDevice's question). */
export const DEVICE_PATTERN = /^(cpu|cuda|cuda:\d+)$/;

/**
 * Validates a device string; asking for CUDA where none is present is an ERR_CUDA_UNAVAILABLE error.
 */
export function checkDevice(device: unknown, name = 'device'): DeviceSpec {
  if (typeof device !== 'string' || !DEVICE_PATTERN.test(device)) {
    throw new StenosisError(
      'ERR_INVALID_DEVICE',
      `Expected cpu, cuda or cuda:N for ${name} but received ${JSON.stringify(device)}`,
    );
  }
  if (device !== 'cpu') {
    const count = cudaDeviceCount();
    const index = device === 'cuda' ? 0 : Number(device.slice(5));
    if (count === 0) {
      const { torch, cudaBuild } = loadAddon().versions;
      const cpu = name.startsWith('--') ? `${name} cpu` : `${name} 'cpu'`;
      throw new StenosisError(
        'ERR_CUDA_UNAVAILABLE',
        `${name} '${device}' was asked for but CUDA is not available: ` +
          (cudaBuild
            ? `the linked libtorch ${torch} has CUDA but sees no GPU (check the NVIDIA driver and ` +
              `CUDA_VISIBLE_DEVICES). Use ${cpu} on this machine.`
            : `the linked libtorch ${torch} was built without CUDA. Use ${cpu}, or rebuild against a CUDA ` +
              'libtorch (LIBTORCH=/path/to/libtorch npm rebuild).'),
      );
    }
    if (index >= count) {
      throw new StenosisError(
        'ERR_CUDA_UNAVAILABLE',
        `${name} '${device}' does not exist: ${count} CUDA device(s) visible`,
      );
    }
  }
  return device as DeviceSpec;
}

/** The machine's core count: the default thread count. */
export function defaultNumThreads(): number {
  return os.availableParallelism();
}
