# Readers of .npy files for the CLI tests (bash, head, od: the tests never need Python). Source it
# before the test changes directory: source "$(dirname "$0")/npy.sh".
# npy_shape FILE: the shape tuple of a .npy header, e.g. "(2, 3, 3, 32, 32)".
npy_shape() { head -c 256 "$1" | tr -d '\0' | grep -ao "'shape': ([0-9, ]*)" | sed "s/'shape': //"; }
# npy_f4 FILE FIRST COUNT: COUNT float32 values of a (version 1) .npy from flat index FIRST, one a line.
npy_f4() {
  local hl=$(( $(od -An -t u2 -j 8 -N 2 "$1") ))
  od -An -v -t f4 -j $((10 + hl + 4 * $2)) -N $((4 * $3)) "$1" | tr -s ' ' '\n' | grep -v '^$'
}
# npy_vals FILE: every value of a (version 1, little-endian f8/f4/i8) .npy, one a line.
npy_vals() {
  local hl=$(( $(od -An -t u2 -j 8 -N 2 "$1") )) t
  case $(head -c 128 "$1" | tr -d '\0' | grep -ao "'descr': '<[a-z][0-9]'") in
    *f8*) t=f8 ;; *f4*) t=f4 ;; *i8*) t=d8 ;; *) echo "npy_vals: unexpected dtype in $1" >&2; return 1 ;;
  esac
  od -An -v -t $t -j $((10 + hl)) "$1" | tr -s ' ' '\n' | grep -v '^$'
}
# npy_raw FILE: the data bytes of a .npy (after its header).
npy_raw() { local hl=$(( $(od -An -t u2 -j 8 -N 2 "$1") )); tail -c +$((11 + hl)) "$1"; }
