#!/usr/bin/env bash
# Builds the Lambda@Edge deployment package: infra/lambda-edge/dist/akidb-edge.zip (handler index.handler,
# nodejs22.x) and its unpacked tree dist/pkg/ (what the tests and the local adapter run).
#
#   bash infra/lambda-edge/build.sh [--bundle DIR] [--trusted-keys FILE] [--cold-start-budget-ms N]
#                                   [--edge-max-texts N] [--out DIR]
#
# The zip holds index.mjs, src/, config.json (Lambda@Edge has no environment variables, so the config travels
# in the package), model/ (the bundle; default models/all-MiniLM-L6-v2/int8-dynamic, the integer path: int8 ×
# int8 weight products, about half the exact int8 bundle's time per request) and node_modules/ as
# `npm install --omit=dev` makes it: @akidb/wasm only, installed from an `npm pack` of akidb-wasm/pkg as a
# consumer gets it. The package's browser builds (web/, web-threads/, bundler/: 13-17 MB of .wasm each) are
# removed: the handler imports the nodejs build. Prints the compressed and unpacked sizes against Lambda's limits and
# fails over 50 MB compressed (origin triggers' limit).
# Signatures: the bundle's manifest.json.sig (made by `akidb bundle sign`, at publish time: this build never
# sees a private key) is copied into the zip beside the manifest whenever the bundle has one. With
# --trusted-keys FILE ({"keys": [{key_id, public_key}, ...]}), FILE goes into the zip as trusted-keys.json,
# config.json names it, the handler refuses at init a bundle whose signature doesn't verify, and this build
# checks the signature first with the same code (@akidb/wasm's verifyManifestSignature), so a package that
# would refuse its own model is never built. --out DIR builds into DIR instead of dist/ (the tests' packages).
# Needs akidb-wasm/pkg (bash akidb-wasm/build.sh), the bundle (scripts/fetch-models.sh), node, npm, zip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

bundle="$root/models/all-MiniLM-L6-v2/int8-dynamic"
dist="$here/dist"
trusted_keys=""
overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) bundle=$(cd "$2" && pwd); shift 2 ;;
    --out) mkdir -p "$2"; dist=$(cd "$2" && pwd); shift 2 ;;
    --trusted-keys)
      [ -f "$2" ] || { echo "build.sh: --trusted-keys $2: no such file" >&2; exit 2; }
      trusted_keys=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
      overrides+=("trustedKeysFile=trusted-keys.json")
      shift 2 ;;
    --cold-start-budget-ms) overrides+=("coldStartBudgetMs=$2"); shift 2 ;;
    --edge-max-texts) overrides+=("edgeMaxTexts=$2"); shift 2 ;;
    *) echo "build.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

for need in "$root/akidb-wasm/pkg/package.json" "$bundle/manifest.json"; do
  if [ ! -f "$need" ]; then
    echo "build.sh: $need is missing (bash akidb-wasm/build.sh; bash scripts/fetch-models.sh)" >&2
    exit 1
  fi
done

mkdir -p "$dist"
work=$(mktemp -d "$dist/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage="$work/pkg"
mkdir -p "$stage/src" "$stage/model"

# config.json first (a bad flag fails before any work): the defaults with the flags' overrides, validated by
# the handler's own config code.
node --input-type=module -e '
  import fs from "node:fs";
  const [src, out, ...pairs] = process.argv.slice(1);
  const { makeConfig } = await import(src);
  const values = {};
  for (const kv of pairs) {
    const [k, v] = kv.split("=");
    values[k] = k === "trustedKeysFile" ? v : Number(v);
  }
  fs.writeFileSync(out, JSON.stringify(makeConfig(values, "build.sh flags"), null, 2) + "\n");
' "$here/src/config.mjs" "$work/config.json" "${overrides[@]}"
cp "$work/config.json" "$stage/config.json"

sig="$bundle/manifest.json.sig"
if [ -n "$trusted_keys" ]; then
  if [ ! -f "$sig" ]; then
    echo "build.sh: --trusted-keys given but $sig is missing (sign the bundle: akidb bundle sign --key FILE $bundle)" >&2
    exit 1
  fi
  # The handler's check, now: the package's own verifyManifestSignature (its nodejs build).
  node -e '
    const fs = require("fs");
    const [glue, manifest, sig, keys] = process.argv.slice(1);
    const { verifyManifestSignature } = require(glue);
    try {
      const keyId = verifyManifestSignature(fs.readFileSync(manifest), fs.readFileSync(sig), fs.readFileSync(keys, "utf8"), manifest);
      if (keyId === undefined) throw new Error(keys + " lists no keys (leave out --trusted-keys to build without the check)");
      console.log("build.sh: " + manifest + " signed by trusted key " + keyId);
    } catch (e) {
      console.error("build.sh: the handler would refuse this bundle: " + (e.message ?? e));
      process.exit(1);
    }
  ' "$root/akidb-wasm/pkg/node/akidb_wasm.js" "$bundle/manifest.json" "$sig" "$trusted_keys"
  cp "$trusted_keys" "$stage/trusted-keys.json"
fi

cp "$here/index.mjs" "$stage/"
cp "$here"/src/*.mjs "$stage/src/"

# @akidb/wasm as a consumer installs it: a tarball, production dependencies only.
tgz=$(cd "$work" && npm pack "$root/akidb-wasm/pkg" --silent)
node -e '
  const fs = require("fs");
  const [src, dest, tgz] = process.argv.slice(1);
  const p = JSON.parse(fs.readFileSync(src, "utf8"));
  p.dependencies["@akidb/wasm"] = "file:" + tgz;
  delete p.devDependencies;
  fs.writeFileSync(dest, JSON.stringify(p, null, 2) + "\n");
' "$here/package.json" "$stage/package.json" "$work/$tgz"
(cd "$stage" && npm install --omit=dev --ignore-scripts --no-audit --no-fund --no-package-lock --loglevel=error)
rm -rf "$stage/node_modules/@akidb/wasm/web" "$stage/node_modules/@akidb/wasm/web-threads" "$stage/node_modules/@akidb/wasm/bundler"
# The installed package.json no longer names a build path.
node -e '
  const fs = require("fs");
  const [file, version] = process.argv.slice(1);
  const p = JSON.parse(fs.readFileSync(file, "utf8"));
  p.dependencies["@akidb/wasm"] = version;
  fs.writeFileSync(file, JSON.stringify(p, null, 2) + "\n");
' "$stage/package.json" "$(node -p 'require(process.argv[1]).version' "$root/akidb-wasm/pkg/package.json")"
if [ ! -f "$stage/node_modules/@akidb/wasm/node/akidb_wasm_bg.wasm" ]; then
  echo "build.sh: the installed @akidb/wasm has no nodejs build" >&2
  exit 1
fi

# The bundle: manifest.json, its signature when there is one, and exactly the files the manifest lists.
cp "$bundle/manifest.json" "$stage/model/"
if [ -f "$sig" ]; then cp "$sig" "$stage/model/"; fi
node -e '
  const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  for (const f of m.files) console.log(f.path);
' "$bundle/manifest.json" | while IFS= read -r f; do cp "$bundle/$f" "$stage/model/$f"; done

# A reproducible zip: fixed timestamps, sorted entries, no extra attributes.
find "$stage" -exec touch -h -d '2020-01-01T00:00:00Z' {} +
(cd "$stage" && find . -type f | LC_ALL=C sort | zip -q -9 -X "$work/akidb-edge.zip" -@)

rm -rf "$dist/pkg" "$dist/akidb-edge.zip"
mv "$stage" "$dist/pkg"
mv "$work/akidb-edge.zip" "$dist/akidb-edge.zip"

zipped=$(stat -c %s "$dist/akidb-edge.zip")
unpacked=$(du -sb "$dist/pkg" | cut -f1)
limit=$((50 * 1024 * 1024))
awk -v z="$zipped" -v u="$unpacked" -v l="$limit" 'BEGIN {
  printf "akidb-edge.zip: %.1f MB compressed (origin-trigger limit 50 MB, target <= 30 MB), %.1f MB unpacked (Lambda limit 250 MB)\n", z / 1048576, u / 1048576
}'
if [ "$zipped" -gt "$limit" ]; then
  echo "build.sh: the zip is over Lambda@Edge's 50 MB limit for origin triggers" >&2
  exit 1
fi
echo "built ${dist#"$root"/}/akidb-edge.zip and ${dist#"$root"/}/pkg/"
