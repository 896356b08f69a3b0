// Writes web/src/corpus.json from the golden reference set (../shared/golden/sentences.json): every
// non-blank sentence is in the corpus except the held-out example queries, so the e2e test can compute the
// expected ranking of each example from the golden embeddings. Run once; the output is committed.
//   node web/tools/make-corpus.mjs [path/to/golden/sentences.json]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const golden = process.argv[2] ?? path.join(here, '../../../shared/golden/sentences.json');
const sentences = JSON.parse(fs.readFileSync(golden, 'utf8'));

// Golden indices of the example queries: each has a clear nearest neighbour in the rest (top-1 margin
// of 0.15 or more in golden cosine), and none is in the corpus.
const HELD_OUT = [171, 173, 165, 163, 161, 169, 72, 135];

const examples = HELD_OUT.map((i) => sentences[i]);
const corpus = sentences.filter((s, i) => s.trim() !== '' && !HELD_OUT.includes(i));
const out = {
  source:
    'The non-blank sentences of the all-MiniLM-L6-v2 golden reference set (shared/golden/sentences.json), ' +
    'less the example queries, which are held out.',
  examples,
  sentences: corpus,
};
fs.writeFileSync(path.join(here, '../src/corpus.json'), `${JSON.stringify(out, null, 1)}\n`);
console.log(`corpus.json: ${corpus.length} sentences, ${examples.length} example queries`);
