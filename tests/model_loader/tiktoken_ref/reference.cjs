// The reference side of tiktoken_ref: the real tiktoken (Rust compiled to WASM, npm `tiktoken`)
// encodes the corpus with cl100k_base, and the ranks file it ships is written out for the C++
// side, so both use the same vocabulary and neither is committed.
//
//   node reference.cjs WORK_DIR
// reads  WORK_DIR/corpus.jsonl           {"name": ..., "text": ...} per line
// writes WORK_DIR/cl100k_base.tiktoken   `base64(token) rank` per line
//        WORK_DIR/cl100k_base.meta.json  {"pat_str": ..., "special_tokens": {text: id}}
//        WORK_DIR/reference.jsonl        {"name": ..., "ids": [...]} per corpus line
"use strict";
const fs = require("fs");
const path = require("path");
const { get_encoding } = require("tiktoken");

const work = process.argv[2];
if (!work) {
  console.error("usage: node reference.cjs WORK_DIR");
  process.exit(2);
}

// encoders/cl100k_base.json holds bpe_ranks as lines `<unused> <first rank> b64 b64 ...`, the
// tokens taking consecutive ranks from <first rank> (js-tiktoken's compact form).
const encoder = require("tiktoken/encoders/cl100k_base.json");
const lines = [];
for (const row of encoder.bpe_ranks.split("\n")) {
  if (!row) continue;
  const fields = row.split(" ");
  const first = Number.parseInt(fields[1], 10);
  for (let i = 2; i < fields.length; ++i) lines.push(`${fields[i]} ${first + i - 2}`);
}
fs.writeFileSync(path.join(work, "cl100k_base.tiktoken"), lines.join("\n") + "\n");
fs.writeFileSync(
  path.join(work, "cl100k_base.meta.json"),
  JSON.stringify({ pat_str: encoder.pat_str, special_tokens: encoder.special_tokens }),
);

// allowed_special "all": special tokens in the text are encoded as specials, the rule the C++
// tokenizer follows (model_loader/tokenizer_tiktoken.h).
const enc = get_encoding("cl100k_base");
const out = [];
for (const row of fs.readFileSync(path.join(work, "corpus.jsonl"), "utf8").split("\n")) {
  if (!row) continue;
  const doc = JSON.parse(row);
  out.push(JSON.stringify({ name: doc.name, ids: Array.from(enc.encode(doc.text, "all")) }));
}
enc.free();
fs.writeFileSync(path.join(work, "reference.jsonl"), out.join("\n") + "\n");
