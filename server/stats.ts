/**
 * The server's counters, as INFO reports them (the per-command ones are in command_stats.ts),
 * the instantaneous rates sampled ten times a second, and the process's memory.
 */
import fs from "node:fs";

/** Samples kept for the instantaneous rates (as Redis: 16 samples, one every 100 ms). */
const SAMPLES = 16;

export class Stats {
  connectionsReceived = 0;
  rejectedConnections = 0;
  protocolErrors = 0;
  outputLimitDisconnects = 0;
  netInputBytes = 0;
  netOutputBytes = 0;
  /** Keys whose binding could not be restored at start, with the reason. */
  readonly bindingsFailed = new Map<string, string>();
  shardRestarts = 0;
  lastSave = Math.floor(Date.now() / 1000);
  readonly startedAt = Date.now();
  /** The most memory (used_memory) seen by a sample. */
  usedMemoryPeak = 0;

  private readonly rates = { ops: new Float64Array(SAMPLES), input: new Float64Array(SAMPLES), output: new Float64Array(SAMPLES) };
  private sampleIndex = 0;
  private last = { at: performance.now(), ops: 0, input: 0, output: 0 };

  /** Takes one sample of the rates (`commands`: commands processed so far) and of the memory peak. */
  sample(commands: number): void {
    const now = performance.now();
    const seconds = (now - this.last.at) / 1000;
    if (seconds <= 0) return;
    const i = this.sampleIndex++ % SAMPLES;
    this.rates.ops[i] = (commands - this.last.ops) / seconds;
    this.rates.input[i] = (this.netInputBytes - this.last.input) / seconds;
    this.rates.output[i] = (this.netOutputBytes - this.last.output) / seconds;
    this.last = { at: now, ops: commands, input: this.netInputBytes, output: this.netOutputBytes };
    this.usedMemoryPeak = Math.max(this.usedMemoryPeak, processMemory().used);
  }

  /** Commands per second, and input and output in KiB per second, averaged over the last samples. */
  instantaneous(): { opsPerSec: number; inputKbps: number; outputKbps: number } {
    const mean = (a: Float64Array) => a.reduce((s, x) => s + x, 0) / SAMPLES;
    return {
      opsPerSec: Math.round(mean(this.rates.ops)),
      inputKbps: mean(this.rates.input) / 1024,
      outputKbps: mean(this.rates.output) / 1024,
    };
  }

  /** CONFIG RESETSTAT: the counters start again from zero. */
  reset(): void {
    this.connectionsReceived = 0;
    this.rejectedConnections = 0;
    this.protocolErrors = 0;
    this.outputLimitDisconnects = 0;
    this.netInputBytes = 0;
    this.netOutputBytes = 0;
    this.usedMemoryPeak = processMemory().used;
    for (const a of Object.values(this.rates)) a.fill(0);
    this.last = { at: performance.now(), ops: 0, input: 0, output: 0 };
  }
}

/**
 * The process's memory: `rss`, everything resident, and `used`, what it allocated (resident
 * memory not backed by a file: every thread's heap, the shard rings). Pages of the mapped files
 * count in `rss` only, as the program's own code does. Where /proc is missing: the main thread's
 * heap and the resident set Bun reports.
 */
export function processMemory(): { used: number; rss: number } {
  try {
    const status = fs.readFileSync("/proc/self/status", "latin1");
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s*(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN) * 1024;
    const used = kib("RssAnon") + kib("RssShmem");
    if (used === used) return { used, rss: kib("VmRSS") };
  } catch {
    // not Linux
  }
  const m = process.memoryUsage();
  return { used: m.heapUsed + m.external, rss: m.rss };
}
