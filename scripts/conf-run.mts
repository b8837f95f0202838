import { runConformanceCase } from "../language/src/index.ts";
import * as fs from "node:fs";
const lines = fs.readFileSync(process.argv[2], "utf8").split("\n").filter(l => l.trim());
const out = lines.map(l => JSON.stringify(runConformanceCase(JSON.parse(l))));
fs.writeFileSync(process.argv[3], out.join("\n") + "\n");
