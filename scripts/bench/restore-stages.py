#!/usr/bin/env python3
"""CPU of a streamed restore by stage, from `perf script -F comm,tid,ip,sym,dso`
of `perf record --call-graph dwarf` (scripts/bench/profile-restore).

usage: restore-stages.py STAT_CSV PERF_SCRIPT CAIRN_BINARY TITLE

A sample's stage is the innermost frame of its call chain that names one
(cairn's Swift symbols are mangled; the type and function names appear in
them as written). Samples whose chain never reaches cairn's code (a library
without frame pointers) are classified by their leaf library instead:
libzstd is zstd -d, libcurl the HTTP receive.
"""
import re
import sys
from collections import defaultdict

stat_csv, script, cairn, title = sys.argv[1:]

# (stage, pattern in a frame's symbol); first match from the leaf wins.
STAGES = [
    ('zstd -d', re.compile(r'ZstdDecompressor|RestoreDecoder.*zstd|ZSTD_decompress')),
    ('decrypt (AES-GCM)', re.compile(r'DecryptingReader|SegmentOpener')),
    ('SHA-256 / byte count', re.compile(r'HashingCounter')),
    ('pipe write → pg_restore', re.compile(r'feedStdin')),
    ('HTTP receive (curl)', re.compile(r'curlWrite|HTTPClient|TransferContext|S3Store|Curl')),
    ('file read (directory store)', re.compile(r'DirectoryStore')),
    ('channel hand-offs', re.compile(r'ByteChannel|Pipeline|transform|RestoreJob')),
    ('child process threads', re.compile(r'ChildProcess|drainStderr|pumpStdout')),
]
LEAF_STAGE = [('zstd -d', re.compile(r'libzstd')), ('HTTP receive (curl)', re.compile(r'libcurl|libssl|libnghttp'))]
WHERE = ['libzstd', 'libcrypto', 'memmove/memcpy', 'kernel', 'swift runtime/Foundation', 'other']


def where(ip, sym, dso):
    if dso.startswith('[kernel') or ip.startswith('ffffffff'):
        return 'kernel'
    if 'libzstd' in dso:
        return 'libzstd'
    if 'libcrypto' in dso:
        return 'libcrypto'
    if re.search(r'mem(move|cpy|set)|__memcpy|__memmove', sym):
        return 'memmove/memcpy'
    if re.search(r'libswift|libFoundation|libdispatch|libBlocksRuntime', dso):
        return 'swift runtime/Foundation'
    return 'other'


cpu_ms = ctx = faults = None
for line in open(stat_csv):
    p = line.strip().split(',')
    if len(p) < 3:
        continue
    if p[2] == 'task-clock':
        cpu_ms = float(p[0])
    elif p[2] == 'context-switches':
        ctx = int(float(p[0]))
    elif p[2] == 'page-faults':
        faults = int(float(p[0]))

counts = defaultdict(lambda: defaultdict(int))
total = 0


def flush(comm, frames):
    global total
    if comm is None or not frames:
        return
    total += 1
    leaf = frames[0]
    w = where(*leaf)
    if comm.startswith('pg_restore') and not comm.startswith('pg_restore-'):
        # pg_restore's own process (cairn's threads for it are "pg_restore-stdin" etc.)
        counts['pg_restore (the child process)'][w] += 1
        return
    stage = None
    for ip, sym, dso in frames:
        for name, pat in STAGES:
            if pat.search(sym):
                stage = name
                break
        if stage:
            break
    if not stage:
        for name, pat in LEAF_STAGE:
            if any(pat.search(dso) for _, _, dso in frames):
                stage = name
                break
    counts[stage or 'other (start-up, runtime, row count)'][w] += 1


comm, frames = None, []
head = re.compile(r'^(\S.*?)\s+(\d+)\s*$')
frame = re.compile(r'^\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$')
for line in open(script, errors='replace'):
    if not line.strip():
        flush(comm, frames)
        comm, frames = None, []
        continue
    m = head.match(line)
    if m and not line[0].isspace():
        flush(comm, frames)
        comm, frames = m.group(1), []
        continue
    m = frame.match(line)
    if m:
        frames.append((m.group(1), m.group(2), m.group(3)))
flush(comm, frames)

sec = (cpu_ms or 0) / 1000
print(f"\n== {title}: {cairn}")
print(f"task-clock {sec:.2f} s (cairn + pg_restore), context switches {ctx}, page faults {faults}, {total} samples")
cols = WHERE
print('| stage | ' + ' | '.join(cols) + ' | total s | share |')
print('|---|' + '---:|' * (len(cols) + 2))
order = sorted(counts, key=lambda s: -sum(counts[s].values()))
for s in order:
    n = sum(counts[s].values())
    cells = [f"{counts[s][c] / total * sec:.2f}" if counts[s][c] else '' for c in cols]
    print(f"| {s} | " + ' | '.join(cells) + f" | {n / total * sec:.2f} | {100 * n / total:.1f} % |")
cairn_n = sum(sum(v.values()) for k, v in counts.items() if not k.startswith('pg_restore'))
print(f"cairn's own CPU (all but pg_restore): {cairn_n / max(total, 1) * sec:.2f} s")
