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
  # BENCH_FRESH_MOTO=1: measure on a freshly started moto (it slows down as it ages)
  if [ "${BENCH_FRESH_MOTO:-0}" = 1 ]; then "$root/scripts/services" restart-moto >/dev/null; fi
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

# proc_cpu PID: CPU seconds of a process and its reaped children (the
# postmaster reaps every backend; moto is one process).
proc_cpu() { python3 -c "
import os, sys
f = open('/proc/%s/stat' % sys.argv[1]).read().rsplit(')', 1)[1].split()
print(sum(int(x) for x in f[11:15]) / os.sysconf('SC_CLK_TCK'))" "$1"; }

# measure_servers LABEL CMD...: `measure`, plus the CPU the PostgreSQL server
# and moto of the test services spent meanwhile, appended to $EXTRA as
# "LABEL pg_cpu S moto_cpu S" (needs bench_services).
measure_servers() {
  local label="$1"; shift
  local pg_pid moto_pid pg0 moto0
  pg_pid="$(head -n 1 "$CAIRN_SERVICES_DIR/pg/data/postmaster.pid")"
  moto_pid="$(cat "$CAIRN_SERVICES_DIR/moto.pid")"
  pg0="$(proc_cpu "$pg_pid")"; moto0="$(proc_cpu "$moto_pid")"
  measure "$label" "$@" || return 1
  # The server reaps a backend (and adds its CPU to the postmaster's) only after
  # it exits, a moment after its client: wait until no other client backend is left.
  local i
  for i in $(seq 100); do
    [ "$(psql -h 127.0.0.1 -p "$CAIRN_TEST_PGPORT" -U postgres -X -d postgres -Atc \
      "select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()")" = 0 ] && break
    sleep 0.1
  done
  echo "$label pg_cpu $(python3 -c "print(round($(proc_cpu "$pg_pid") - $pg0, 2))") moto_cpu $(python3 -c "print(round($(proc_cpu "$moto_pid") - $moto0, 2))")" >> "$EXTRA"
}
