#!/usr/bin/env bash
# A throwaway container with systemd as PID 1, for testing cairn.service
# under a real systemd (Tests/IntegrationTests/SystemdContainerTests.swift).
#
#   systemd-container.sh check
#       exit 0 when this machine has what `boot` needs (root, systemd-nspawn,
#       /usr/lib/systemd/systemd); otherwise print why on stdout and exit 1.
#   systemd-container.sh boot DIR
#       boots DIR/root (made by the caller: scripts/install --destdir DIR/root,
#       config, keys) with systemd-nspawn and waits until the container's
#       systemd reports the system as running. The container's /usr is an
#       overlay: the host's /usr read-only below, DIR/root/usr (what
#       scripts/install put there) on top; /opt/swift (the Swift runtime of a
#       debug build) is bound read-only. The host network is shared (no
#       --private-network): the test PostgreSQL and S3 proxy on 127.0.0.1
#       are reachable. Writes DIR/nspawn.pid and DIR/leader.pid (the
#       container's PID 1 as seen from the host); console in DIR/console.log.
#   systemd-container.sh exec DIR COMMAND [ARG...]
#       runs COMMAND inside the container (all of its namespaces), with a
#       clean environment.
#   systemd-container.sh stop DIR
#       halts the container (SIGTERM to nspawn: an orderly shutdown), kills
#       it if it has not ended within 60 s, and removes DIR.
#
# No machined is needed (--register=no) and nspawn stays in the caller's
# cgroup (--keep-unit): the host need not run systemd. See docs/TESTING.md.
set -euo pipefail

die() { echo "systemd-container: $*" >&2; exit 2; }

leader_of() {   # the child of nspawn that is the container's systemd
    local np="$1" c
    for c in $(pgrep -P "$np" 2>/dev/null || true); do
        if [ "$(cat /proc/"$c"/comm 2>/dev/null)" = systemd ]; then echo "$c"; return 0; fi
    done
    return 1
}

cmd="${1:-}"; shift || true
case "$cmd" in
check)
    [ "$(id -u)" = 0 ] || { echo "not root (systemd-nspawn needs root)"; exit 1; }
    command -v systemd-nspawn >/dev/null || { echo "systemd-nspawn is not installed (Debian: apt-get install systemd-container)"; exit 1; }
    [ -x /usr/lib/systemd/systemd ] || { echo "/usr/lib/systemd/systemd is missing (Debian: apt-get install systemd)"; exit 1; }
    command -v nsenter >/dev/null || { echo "nsenter is missing (util-linux)"; exit 1; }
    exit 0
    ;;
boot)
    dir="${1:?boot DIR}"; dir="$(cd "$dir" && pwd)"
    root="$dir/root"
    [ -d "$root/etc" ] || die "$root/etc is missing: make the root first"
    name="cairn-$(basename "$dir" | tr -c 'a-zA-Z0-9-\n' '-' | tail -c 20)"
    # A root made from the host's /usr: the usual symlinks, a minimal /etc.
    mkdir -p "$root"/{proc,sys,dev,run,tmp,var,srv,root} "$dir/usr-upper"
    for l in bin lib lib64 sbin; do [ -e "$root/$l" ] || ln -s "usr/$l" "$root/$l"; done
    # scripts/install put bin/, lib/sysusers.d, lib/tmpfiles.d under root/usr:
    # they become the upper layer of the container's /usr.
    if [ -d "$root/usr" ] && [ -n "$(ls -A "$root/usr")" ]; then
        cp -a "$root/usr/." "$dir/usr-upper/"
        rm -rf "$root/usr"
    fi
    mkdir -p "$root/usr"
    [ -e "$root/etc/os-release" ] || cp /usr/lib/os-release "$root/etc/os-release"
    [ -e "$root/etc/passwd" ] || echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    [ -e "$root/etc/group" ] || echo 'root:x:0:' >"$root/etc/group"
    [ -e "$root/etc/machine-id" ] || : >"$root/etc/machine-id"
    opts=(--quiet --register=no --keep-unit --machine="$name" -D "$root"
          --overlay="/usr:$dir/usr-upper:/usr" --console=read-only -b)
    [ -d /opt/swift ] && opts+=(--bind-ro=/opt/swift)
    # nspawn outlives this script: it must not keep any descriptor of its
    # caller (a caller that waits for EOF on one would wait for the container).
    (
        for f in /proc/$BASHPID/fd/*; do
            n="${f##*/}"
            if [ "$n" -gt 2 ]; then eval "exec $n>&-" 2>/dev/null || true; fi
        done
        exec setsid systemd-nspawn "${opts[@]}" </dev/null >"$dir/console.log" 2>&1
    ) &
    np=$!
    echo "$np" >"$dir/nspawn.pid"
    echo "$name" >"$dir/machine"
    # Wait for PID 1, then for the boot to finish (is-system-running --wait
    # returns when systemd is no longer starting up).
    for _ in $(seq 1 600); do
        kill -0 "$np" 2>/dev/null || { cat "$dir/console.log" >&2; die "systemd-nspawn exited while booting"; }
        if l="$(leader_of "$np")"; then echo "$l" >"$dir/leader.pid"; break; fi
        sleep 0.1
    done
    [ -s "$dir/leader.pid" ] || die "no systemd in the container after 60 s"
    l="$(cat "$dir/leader.pid")"
    for _ in $(seq 1 600); do
        # The bus socket appears once PID 1 is up.
        state="$(timeout 120 nsenter -t "$l" -a env -i PATH=/usr/bin:/usr/sbin systemctl is-system-running --wait 2>/dev/null || true)"
        case "$state" in
            running|degraded) echo "systemd-container: $name booted ($state), PID 1 is host pid $l"; exit 0 ;;
            stopping|offline) break ;;
        esac
        kill -0 "$np" 2>/dev/null || break
        sleep 0.1
    done
    cat "$dir/console.log" >&2
    die "the container's systemd did not finish booting (last state: ${state:-none})"
    ;;
exec)
    dir="${1:?exec DIR COMMAND}"; shift
    l="$(cat "$dir/leader.pid")"
    exec nsenter -t "$l" -a env -i PATH=/usr/local/bin:/usr/bin:/usr/sbin LANG=C.UTF-8 SYSTEMD_LOG_COLOR=0 SYSTEMD_PAGER= "$@"
    ;;
stop)
    dir="${1:?stop DIR}"
    [ -d "$dir" ] || exit 0
    if [ -s "$dir/nspawn.pid" ]; then
        np="$(cat "$dir/nspawn.pid")"
        if kill -0 "$np" 2>/dev/null; then
            kill -TERM "$np" 2>/dev/null || true
            for _ in $(seq 1 600); do kill -0 "$np" 2>/dev/null || break; sleep 0.1; done
            if kill -0 "$np" 2>/dev/null; then
                echo "systemd-container: the container did not halt within 60 s; killing it" >&2
                kill -KILL -- "-$np" 2>/dev/null || kill -KILL "$np" 2>/dev/null || true
                for _ in $(seq 1 100); do kill -0 "$np" 2>/dev/null || break; sleep 0.1; done
            fi
        fi
    fi
    # nspawn leaves its propagation directory when /run is not a tmpfs.
    if [ -s "$dir/machine" ]; then rmdir "/run/systemd/nspawn/propagate/$(cat "$dir/machine")" 2>/dev/null || true; fi
    # Anything still mounted under DIR (nothing should be) is unmounted first:
    # never delete through a mount.
    if grep -q " $dir/" /proc/self/mounts; then
        grep " $dir/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" || true; done
    fi
    rm -rf --one-file-system "$dir"
    ;;
*)
    die "usage: systemd-container.sh check | boot DIR | exec DIR COMMAND... | stop DIR"
    ;;
esac
