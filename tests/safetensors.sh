# Readers of .safetensors files for the CLI tests (bash, head, od, jq). Source it before the test
# changes directory: source "$(dirname "$(realpath "$0")")/safetensors.sh".
# Bytes are read with od -j/-N, or through head first: `tail -c +N | head -c M` on a large file ends
# tail with SIGPIPE, which pipefail and set -e turn into a silent exit of the test.
# st_header FILE: the JSON header.
st_header() { local n=$(( $(od -An -t u8 -N 8 "$1") )); head -c $((8 + n)) "$1" | tail -c "$n"; }
# st_hex FILE NAME: one tensor's bytes as hex ("" when the file has no such tensor).
st_hex() {
  local n a b
  n=$(( $(od -An -t u8 -N 8 "$1") ))
  read -r a b < <(st_header "$1" | jq -r --arg k "$2" 'if has($k) then .[$k].data_offsets | "\(.[0]) \(.[1])" else "x x" end')
  [[ $a == x ]] && return 0
  od -An -tx1 -j $((8 + n + a)) -N $((b - a)) "$1" | tr -d ' \n'
}
