// Installs the npm dependencies (Bun among them) the first time `npm start` or `npm test` runs,
// so a fresh clone needs only Node and npm. Does nothing once node_modules/.bin/bun exists.
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
if (!existsSync(join(root, "node_modules", ".bin", "bun"))) {
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const args = existsSync(join(root, "package-lock.json")) ? ["ci"] : ["install"];
  console.error(`mmapd: installing dependencies (npm ${args.join(" ")})...`);
  const r = spawnSync(npm, args, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
