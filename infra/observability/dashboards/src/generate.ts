// Writes each dashboard's JSON to the directory given (default ../generated): the files Grafana imports,
// committed and compared with a fresh generation in CI.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { deviceDashboard } from "./device";
import { edgeDashboard } from "./edge";
import { regionalDashboard } from "./regional";

const out = process.argv[2] ?? join(__dirname, "..", "..", "generated");
mkdirSync(out, { recursive: true });
for (const [file, builder] of [
  ["akidb-regional.json", regionalDashboard()],
  ["akidb-device.json", deviceDashboard()],
  ["akidb-edge.json", edgeDashboard()],
] as const) {
  writeFileSync(join(out, file), JSON.stringify(builder.build(), null, 2) + "\n");
}
