#!/usr/bin/env bash
# Brings new fixture files into the repository's own copy (tests/fixtures/).
#   scripts/sync-fixtures.sh SOURCE     SOURCE: another fixtures folder (its area folders: graph/, cipp/, …)
# Copies every file of SOURCE that tests/fixtures lacks and reports each one. A file
# present in both with different content is never overwritten: it is reported and
# the script exits 1, so a person decides. Identical files are left alone.
set -euo pipefail
src=${1:?usage: scripts/sync-fixtures.sh SOURCE (another fixtures folder, laid out like tests/fixtures)}
[ -d "$src" ] || { echo "sync-fixtures: '$src' is not a folder" >&2; exit 2; }
dest=${FIXTURES_DEST:-"$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures"}
added=0 differ=0
while IFS= read -r -d '' f; do
  rel=${f#"$src"/}
  target="$dest/$rel"
  if [ ! -e "$target" ]; then
    mkdir -p "$(dirname "$target")"
    cp "$f" "$target"
    chmod u+w "$target"
    echo "added: $rel"
    added=$((added + 1))
  elif ! cmp -s "$f" "$target"; then
    echo "differs (not overwritten): $rel" >&2
    differ=$((differ + 1))
  fi
done < <(find "$src" -type f -print0 | sort -z)
if [ "$added" -eq 0 ] && [ "$differ" -eq 0 ]; then
  echo "sync-fixtures: nothing to add; tests/fixtures is up to date with $src"
else
  echo "sync-fixtures: $added added, $differ differ"
fi
[ "$differ" -eq 0 ]
