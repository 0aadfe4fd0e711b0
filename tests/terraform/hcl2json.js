#!/usr/bin/env node
// Print the JSON form of HCL files, as HashiCorp's own parser (hcl2json,
// compiled to WebAssembly) reads them: {"FILE": {...}, ...} on stdout.
// A file that does not parse ends the run with status 1 and the parser's
// message (FILE:LINE,COL) on stderr, so a syntax error fails the caller.
"use strict";
const fs = require("fs");
const { parse } = require("@cdktf/hcl2json");

async function main(files) {
  if (files.length === 0) {
    process.stderr.write("usage: hcl2json.js FILE.tf...\n");
    return 2;
  }
  const out = {};
  for (const f of files) {
    try {
      out[f] = await parse(f, fs.readFileSync(f, "utf8"));
    } catch (e) {
      process.stderr.write(`${f}: ${e && e.message ? e.message : e}\n`);
      return 1;
    }
  }
  process.stdout.write(JSON.stringify(out, null, 1) + "\n");
  return 0;
}

// exitCode, not exit(): a pipe takes stdout asynchronously, and exit() would
// cut a large answer short.
main(process.argv.slice(2)).then((rc) => {
  process.exitCode = rc;
});
