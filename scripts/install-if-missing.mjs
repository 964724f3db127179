// Installs the npm dependencies (Bun among them) the first time `npm start` or `npm test` runs,
// so a fresh clone needs only Node and npm, and again after a pull that added one. Does nothing
// while node_modules/.bin/bun and every package named in package.json are there.
import { existsSync, readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const packages = Object.keys({ ...manifest.dependencies, ...manifest.devDependencies });
const missing =
  !existsSync(join(root, "node_modules", ".bin", "bun")) ||
  packages.some((name) => !existsSync(join(root, "node_modules", name, "package.json")));
if (missing) {
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const args = existsSync(join(root, "package-lock.json")) ? ["ci"] : ["install"];
  console.error(`mmapd: installing dependencies (npm ${args.join(" ")})...`);
  const r = spawnSync(npm, args, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
