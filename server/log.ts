/**
 * Log lines in Redis's format: `pid:role dd Mon yyyy hh:mm:ss.mmm <level> message`, where the
 * level mark is `.` debug, `-` verbose, `*` notice, `#` warning; role M is the main thread. They
 * go to standard output, or to the `logfile` appended to.
 */
import fs from "node:fs";

export type LogLevel = "debug" | "verbose" | "notice" | "warning";

const MARKS: Record<LogLevel, string> = { debug: ".", verbose: "-", notice: "*", warning: "#" };
const ORDER: Record<LogLevel, number> = { debug: 0, verbose: 1, notice: 2, warning: 3 };
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

let threshold: LogLevel = "notice";
/** The log file's descriptor, or -1 for standard output. */
let fileFd = -1;

/** Sets the lowest level printed. */
export function setLogLevel(level: LogLevel): void {
  threshold = level;
}

function timestamp(d: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(d.getDate())} ${MONTHS[d.getMonth()]} ${d.getFullYear()} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

/** Sends the log lines to `file` (appended to, created if missing) from now on; throws if it cannot be opened. */
export function setLogFile(file: string): void {
  fileFd = fs.openSync(file, "a", 0o644);
}

/** Prints one log line if `level` is at or above the threshold. */
export function log(level: LogLevel, message: string): void {
  if (ORDER[level] < ORDER[threshold]) return;
  const line = `${process.pid}:M ${timestamp(new Date())} ${MARKS[level]} ${message}\n`;
  if (fileFd >= 0) fs.writeSync(fileFd, line);
  else process.stdout.write(line);
}
