// ajv's side of the validator benchmark: the same schema and events, one
// thread, validate() in a loop (best of PASSES rounds).  Prints "ajv <validations/s> valid=<n> invalid=<n>".
// usage: node ajv_bench.js SCHEMA_FILE|URI [SCHEMA_DIR] PASSES EVENTS.jsonl
"use strict";
const fs = require("fs");
const path = require("path");
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

const [schemaArg, dirArg, passesArg, eventsFile] = process.argv.slice(2);
const ajv = new Ajv2020({ strict: false });
addFormats(ajv);
function walk(dir) {
  for (const name of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (fs.statSync(p).isDirectory()) walk(p);
    else if (name.endsWith(".json")) ajv.addSchema(JSON.parse(fs.readFileSync(p, "utf8")));
  }
}
let validate;
if (dirArg && dirArg !== "-") {
  walk(dirArg);
  validate = ajv.getSchema(schemaArg);
} else {
  validate = ajv.compile(JSON.parse(fs.readFileSync(schemaArg, "utf8")));
}
const events = fs.readFileSync(eventsFile, "utf8").split("\n").filter((l) => l).map((l) => JSON.parse(l));
let valid = 0;
for (const e of events) if (validate(e)) valid++;
for (let w = 0; w < 2; w++) for (const e of events) validate(e);
// PASSES rounds; the best round counts (the machine is shared), as on libpixel's side.
const passes = parseInt(passesArg, 10);
let best = Infinity;
for (let p = 0; p < passes; p++) {
  const t0 = process.hrtime.bigint();
  for (const e of events) validate(e);
  best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
}
console.log(`ajv ${Math.round(events.length / best)} valid=${valid} invalid=${events.length - valid}`);
