#!/usr/bin/env bash
# The Debian package (scripts/package), installed in place of the source
# install:
#  1 it builds; its control file names postgresql-15 and the C/C++
#    runtime; it holds the library, control and SQL files, every update
#    script, the companion, both models and ONNX Runtime
#  2 what the source install put in place is removed: CREATE EXTENSION
#    then fails
#  3 apt install ./….deb (offline: its dependencies are installed);
#    the two libraries resolve every library they need
#  4 on a fresh cluster the whole regression suite passes against it
#  5 apt remove takes every file away; CREATE EXTENSION fails again
#  6 installed again (what the machine keeps)
# Prints the package's size and install time.
# usage: test/t/013_package.sh PORT
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1
PG_CONFIG=${PG_CONFIG:-pg_config}
NAME=package_test
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
as_pg() { if [ "$(id -u)" = 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi; }
stop() { scripts/cluster stop $NAME "$PORT"; }
trap stop EXIT
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
fail() { echo "not ok - package: $*"; exit 1; }
LIB=$("$PG_CONFIG" --pkglibdir)
EXT=$("$PG_CONFIG" --sharedir)/extension

# -- 1 build
DEB=$(scripts/package)
[ -f "$DEB" ] || fail "scripts/package made no file"
deps=$(dpkg-deb -f "$DEB" Depends)
for d in postgresql-15 libc6 libstdc++6 libgcc-s1; do grep -q "$d" <<< "$deps" || fail "Depends lacks $d: $deps"; done
files=$(dpkg-deb -c "$DEB" | awk '{ print $6 }')
VERSION=$(dpkg-deb -f "$DEB" Version)
# every update script the repository has, and one that leads to this version
ls sql/pg_ecom--*--"$VERSION".sql >/dev/null || fail "no update script leads to $VERSION"
updates=(); for u in sql/pg_ecom--*--*.sql; do updates+=("$EXT/${u#sql/}"); done
for f in "$LIB/pg_ecom.so" "$EXT/pg_ecom.control" "$EXT/pg_ecom--$VERSION.sql" "${updates[@]}" \
         "$EXT/pg_ecom_vector.control" "$EXT/pg_ecom/libonnxruntime.so" \
         "$EXT/pg_ecom/model.onnx.data" "$EXT/pg_ecom/model_int8.onnx" "$EXT/pg_ecom/encoders/multilingual-e5-small/model.onnx.data"; do
  grep -qx ".$f" <<< "$files" || fail "the package lacks $f"
done
size_mb=$(du -m "$DEB" | cut -f1)
ok "$(basename "$DEB") built: $size_mb MB, Depends: $deps"

# -- 2 the source install, removed (and the package, where an earlier run
# left it installed)
$SUDO dpkg -r postgresql-15-pg-ecom >/dev/null 2>&1 || true
$SUDO rm -rf "$LIB/pg_ecom.so" "$EXT/pg_ecom" "$EXT"/pg_ecom.control "$EXT"/pg_ecom--*.sql "$EXT"/pg_ecom_vector*
stop
as_pg rm -rf .ecom/clusters/$NAME/data
scripts/cluster start $NAME "$PORT"
q() { scripts/cluster psql $NAME "$PORT" -d postgres -qAt "$@"; }
out=$(q -c "CREATE EXTENSION pg_ecom" 2>&1 || true)
grep -q 'extension "pg_ecom" is not available\|could not open extension control file' <<< "$out" || fail "after removing the source install: $out"
ok "the source install removed: CREATE EXTENSION pg_ecom fails"

# -- 3 apt install
t0=$(date +%s.%N)
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-download "$DEB" >/dev/null 2>&1 \
  || $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$DEB" >/dev/null
t1=$(date +%s.%N)
install_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
dpkg -s postgresql-15-pg-ecom | grep -q "^Status: install ok installed" || fail "dpkg does not list the package as installed"
for so in "$LIB/pg_ecom.so" "$EXT/pg_ecom/libonnxruntime.so"; do
  [ -f "$so" ] || fail "apt install did not put $so in place"
  if ldd "$so" | grep -q "not found"; then fail "$so: $(ldd "$so" | grep 'not found')"; fi
done
ok "apt install in $install_s s; both libraries resolve every dependency"

# -- 4 the regression suite against the package
test/faults.sh "$EXT/pg_ecom" /tmp/pg_ecom_faults >/dev/null
out_dir=$(mktemp -d); chmod a+rwx "$out_dir"
PGXS=$(dirname "$("$PG_CONFIG" --pgxs)")
if ! PG_ECOM_MODEL_DIR=$EXT/pg_ecom "$PGXS/../test/regress/pg_regress" --host=127.0.0.1 --port="$PORT" --user=postgres \
     --dbname=pg_ecom_regress --inputdir=test --outputdir="$out_dir" $(cat test/schedule) > "$out_dir/summary" 2>&1; then
  cat "$out_dir/summary"; head -100 "$out_dir/regression.diffs" 2>/dev/null || true
  fail "the regression suite failed against the package"
fi
passed=$(grep -cE '^test .* \.\.\. ok' "$out_dir/summary" || true)
ok "the regression suite against the package: $passed files passed"

# -- 5 apt remove
stop
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq postgresql-15-pg-ecom >/dev/null
for f in "$LIB/pg_ecom.so" "$EXT/pg_ecom.control" "$EXT/pg_ecom/model.onnx.data" "$EXT/pg_ecom_vector.control"; do
  [ ! -e "$f" ] || fail "apt remove left $f"
done
scripts/cluster start $NAME "$PORT"
q -c "DROP DATABASE IF EXISTS pg_ecom_regress" -c "CREATE DATABASE pkg_gone" >/dev/null
out=$(scripts/cluster psql $NAME "$PORT" -d pkg_gone -qAt -c "CREATE EXTENSION pg_ecom" 2>&1 || true)
grep -q 'extension "pg_ecom" is not available\|could not open extension control file' <<< "$out" || fail "after apt remove: $out"
ok "apt remove took every file away; CREATE EXTENSION pg_ecom fails"

# -- 6 installed again: the machine keeps the package
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$DEB" >/dev/null
[ -f "$LIB/pg_ecom.so" ] || fail "reinstalling the package"
ok "installed again"
rm -rf "$out_dir"
echo "package: $n checks passed ($(basename "$DEB"), $size_mb MB, apt install $install_s s)"
