# Shared helpers for the benchmarks (sourced).
# measure LABEL CMD...: runs CMD under GNU time; appends "label wall_s cpu_s maxrss_kib" to $RESULTS.
measure() {
  local label="$1"; shift
  local tf; tf="$(mktemp)"
  /usr/bin/time -f "%e %U %S %M" -o "$tf" "$@" >/dev/null 2>"$tf.err" || { echo "bench: '$label' failed:" >&2; tail -5 "$tf.err" >&2; rm -f "$tf" "$tf.err"; return 1; }
  read -r wall user sys rss < "$tf"
  local cpu; cpu="$(python3 -c "print(round($user + $sys, 2))")"
  echo "$label $wall $cpu $rss" >> "$RESULTS"
  printf '  %-40s wall %7.2f s   cpu %7.2f s   peak RSS %7.1f MiB\n' "$label" "$wall" "$cpu" "$(python3 -c "print($rss/1024)")"
  rm -f "$tf" "$tf.err"
}

# ratio A B: wall-time ratio of two labels in $RESULTS
ratio() {
  python3 - "$RESULTS" "$1" "$2" <<'PY'
import sys
rows = {l.split()[0]: [float(x) for x in l.split()[1:]] for l in open(sys.argv[1]) if l.strip()}
a, b = rows[sys.argv[2]], rows[sys.argv[3]]
print(f"  {sys.argv[2]} / {sys.argv[3]}: wall {a[0]/b[0]:.2f}x, cpu {a[1]/max(b[1],0.01):.2f}x, peak RSS {a[2]/1024:.1f} MiB vs {b[2]/1024:.1f} MiB")
PY
}

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd; }

# Starts the test services unless already running; sets CAIRN_TEST_* variables.
bench_services() {
  local root; root="$(repo_root)"
  export CAIRN_SERVICES_DIR="${CAIRN_SERVICES_DIR:-/tmp/cairn-services-bench}"
  "$root/scripts/services" start >/dev/null
  eval "$("$root/scripts/services" env)"
  export AWS_ACCESS_KEY_ID="$CAIRN_TEST_AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$CAIRN_TEST_AWS_SECRET_ACCESS_KEY"
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
}

release_binary() {
  local root; root="$(repo_root)"
  (cd "$root" && swift build -c release --product cairn >/dev/null) || return 1
  echo "$root/.build/release/cairn"
}

# bench_db_name SCALE: cairn_bench at scale 1, else cairn_bench_<scale> (0.5 -> cairn_bench_0_5)
bench_db_name() {
  python3 -c "import sys; s=float(sys.argv[1]); print('cairn_bench' if s == 1 else 'cairn_bench_' + ('%g' % s).replace('.', '_'))" "$1"
}
