#!/usr/bin/env bash
# CI: the plugin's GUI tests against Phy's next release. The plugin patches Phy's table internals (gui/tables.py)
# to keep merges fast, so a new Phy can break it without an error: for each Phy snapshot in ../shared/vendor/
# (Phy's master, its merge-view branch), build the snapshot's wheel, put that Phy in place of the released one in
# a fresh venv holding the project and its test extras, and run the tests of what the user sees in Phy.
#
# One venv serves every snapshot: the snapshots' wheels require the same packages, and
# `pip install --no-deps --force-reinstall` replaces every file of the previous Phy (a second venv only unpacked
# the same 1.1 GB again, about two minutes here).
#
# Usage: bash .ci/phy_next.sh [SNAPSHOT.tar.gz ...]   (default: every phy-*.tar.gz in ../shared/vendor/)
# Measured here (a shared 2-core machine), four runs: 7 to 13 min for both (the venv 106-224 s, master 142-225 s,
# merge-view 144-297 s, removing the venv the rest; the longest with the machine's load at 4), 6 min of CPU.
set -euo pipefail
snapshots=()
for snapshot in "$@"; do snapshots+=("$(realpath "$snapshot")"); done
cd "$(dirname "$0")/.."
# ../shared/vendor/ where the team keeps them; .ci/vendor/ holds a copy (1.8 MB), so a CI machine without
# ../shared tests them too
vendor=../shared/vendor
[ -d "$vendor" ] || vendor=.ci/vendor

if [ "${#snapshots[@]}" -eq 0 ]; then
  if [ ! -d "$vendor" ]; then
    echo "phy_next: no ../shared/vendor or .ci/vendor folder, Phy's next release not tested"
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
  fi
  shopt -s nullglob
  snapshots=("$vendor"/phy-*.tar.gz)
  shopt -u nullglob
  if [ "${#snapshots[@]}" -eq 0 ]; then
    echo "phy_next: no phy-*.tar.gz in $vendor, Phy's next release not tested"
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
  fi
fi

# Columns, sort, filter, the dock, the exported-column guard, Bombcell's metric columns through a merge and a
# split and their sizing, the guard of every slot (with a merge/split/undo/redo), the ways Phy ends, the first
# look (column order and widths, window, docks), a merge with its live label (and what-if, undo, redo, split),
# and the Merge View of Phy's merge-view branch (skipped where Phy has none).
TESTS=(
  tests/test_plugin_gui.py
  tests/test_metric_columns.py
  tests/test_guard.py
  tests/test_exit.py
  tests/test_first_look.py
  "tests/test_live_metrics.py::test_undo_redo_restore_the_right_values_without_recomputing"
  tests/test_merge_view.py
)

work=$(mktemp -d "${TMPDIR:-/tmp}/phy-next.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS
python -m venv "$work/venv"
venv_python="$work/venv/bin/python"
[ -x "$venv_python" ] || venv_python="$work/venv/Scripts/python.exe"   # Git Bash on Windows
"$venv_python" -m pip install --quiet -e ".[test]"
echo "phy_next: the project and its test extras in a fresh venv ($((SECONDS - start)) s)"

status=0
for snapshot in "${snapshots[@]}"; do
  name=$(basename "$snapshot" .tar.gz)
  start=$SECONDS
  python -m pip wheel --quiet --no-deps --wheel-dir "$work/$name" "$snapshot"
  "$venv_python" -m pip install --quiet --no-deps --force-reinstall "$work/$name"/phy-*.whl
  "$venv_python" -m pip check  # the snapshot's requirements are met by what the venv holds (else: fails)
  phy=$("$venv_python" -c "import phy, pathlib; print(phy.__version__, pathlib.Path(phy.__file__).parent)")
  echo "phy_next: $name: Phy $phy ($((SECONDS - start)) s)"
  # the Merge View's test must run, not skip, on the snapshot of Phy's merge-view branch
  case "$name" in phy-merge-view-*) expect_merge_view=1 ;; *) expect_merge_view= ;; esac
  # tests/conftest.py sets Qt's offscreen platform; -p no:cacheprovider: .pytest_cache stays the main run's
  if PHY_BCREASON_EXPECT_MERGE_VIEW=$expect_merge_view "$venv_python" -m pytest -q -p no:cacheprovider "${TESTS[@]}"; then
    echo "phy_next: $name: passed ($((SECONDS - start)) s)"
  else
    echo "phy_next: $name: FAILED ($((SECONDS - start)) s)"
    status=1
  fi
done
exit $status
