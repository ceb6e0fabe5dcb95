#!/usr/bin/env bash
# Times OpenCascade's own command interpreter (DRAW, Debian's occt-draw) reading and meshing each
# real STEP file with the settings parallax-step uses (chordal deflection a thousandth of the
# largest side, 20°): the kernel's work alone, to compare with `cargo bench -p parallax-step
# --bench import` (which also walks the document, builds and welds the mesh). Median of five.
set -euo pipefail
cd "$(dirname "$0")/.."
for pkg in occt-draw libocct-draw-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends occt-draw libocct-draw-dev >/dev/null
    break
  }
done
script=$(mktemp /tmp/occt-bench.XXXXXX.tcl)
echo "| file | triangles | median ReadStep + incmesh |"
echo "|---|---|---|"
for file in render/step/tests/data/*.st*p; do
  cat >"$script" <<TCL
pload XDE MODELING
set times {}
for {set i 0} {\$i < 5} {incr i} {
  catch {Close D -silent}
  set t0 [clock microseconds]
  ReadStep D $PWD/$file
  XGetOneShape s D
  bounding s -optimal -save x0 y0 z0 x1 y1 z1
  set size [expr {max([dval x1]-[dval x0], [dval y1]-[dval y0], [dval z1]-[dval z0])}]
  incmesh s [expr {\$size * 0.001}] -a 20
  lappend times [expr {([clock microseconds] - \$t0) / 1000.0}]
  if {\$i == 0} { regexp {([0-9]+) triangles} [trinfo s] -> triangles }
}
puts "RESULT \$triangles [lindex [lsort -real \$times] 2]"
exit
TCL
  result=$(occt-draw -b -f "$script" 2>&1 | grep '^RESULT' || echo "RESULT ? ?")
  read -r _ triangles ms <<<"$result"
  echo "| $(basename "$file") | $triangles | $ms ms |"
done
rm -f "$script"
