#!/usr/bin/env python3
"""Deterministic uploads tree for the migration benchmark.

migrate-tree.py DIR [SMALL] [LARGE]: SMALL files of 2-300 KB in
year/month/user folders and LARGE files of 30-120 MB (defaults 5000 and 10),
contents and sizes from a fixed seed. Re-running with the same arguments
leaves an existing tree alone (DIR.spec, next to it, records them). Prints the total bytes.
"""
import os, random, sys

def main():
    root = sys.argv[1]
    small = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    large = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    spec = f"v1 {small} {large}\n"
    marker = root.rstrip("/") + ".spec"
    if os.path.exists(marker) and open(marker).read() == spec:
        total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
        print(total)
        return
    if os.path.exists(root):
        import shutil
        shutil.rmtree(root)
    rng = random.Random(20261127)
    exts = ["jpg", "jpeg", "png", "webp", "pdf", "docx", "heic", "gif"]
    files = []
    for i in range(small):
        y = 2021 + rng.randrange(5); m = 1 + rng.randrange(12); u = rng.randrange(400)
        files.append((f"{y}/{m:02d}/user{u:04d}/upload-{i:05d}.{rng.choice(exts)}", rng.randint(2_000, 300_000)))
    for i in range(large):
        y = 2021 + rng.randrange(5); m = 1 + rng.randrange(12); u = rng.randrange(400)
        files.append((f"{y}/{m:02d}/user{u:04d}/video-{i:02d}.mp4", rng.randint(30_000_000, 120_000_000)))
    total = 0
    for path, size in files:
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            left = size
            while left > 0:
                n = min(left, 1 << 22)
                f.write(rng.randbytes(n))
                left -= n
        total += size
    with open(marker, "w") as f:
        f.write(spec)
    print(total)

main()
