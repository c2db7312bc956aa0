#!/usr/bin/env python3
"""Deterministic uploads tree for the migration benchmark.

migrate-tree.py DIR [SMALL] [LARGE]: SMALL files of 2-300 KB in
year/month/user folders and LARGE files of 30-120 MB (defaults 5000 and 10),
contents and sizes from a fixed seed.

migrate-tree.py --scale DIR FILES [SPARSE [SPARSE_GIB]]: the scale tree of
issue 15: FILES small files of 1-8 KB in YEAR/MONTH/userNNNN folders (about
50 files per user folder) and SPARSE sparse files of SPARSE_GIB GiB each
(default 2), made with truncate: holes, no disk blocks; read back as zeros.

Re-running with the same arguments leaves an existing tree alone (DIR.spec,
next to it, records them). Prints the total bytes (apparent sizes).
"""
import os, random, shutil, sys

def tree_total(root):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)

def main():
    args = sys.argv[1:]
    scale = bool(args) and args[0] == "--scale"
    if scale:
        args = args[1:]
    root = args[0]
    if scale:
        small = int(args[1]) if len(args) > 1 else 50000
        sparse = int(args[2]) if len(args) > 2 else 0
        sparse_gib = int(args[3]) if len(args) > 3 else 2
        spec = f"scale-v1 {small} {sparse} {sparse_gib}\n"
    else:
        small = int(args[1]) if len(args) > 1 else 5000
        large = int(args[2]) if len(args) > 2 else 10
        spec = f"v1 {small} {large}\n"
    marker = root.rstrip("/") + ".spec"
    if os.path.exists(marker) and open(marker).read() == spec:
        print(tree_total(root))
        return
    if os.path.exists(marker):
        os.unlink(marker)
    if os.path.exists(root):
        shutil.rmtree(root)
    rng = random.Random(20261127)
    exts = ["jpg", "jpeg", "png", "webp", "pdf", "docx", "heic", "gif"]
    total = 0
    made = set()
    if scale:
        users = max(1, small // 50)
        for i in range(small):
            y = 2019 + rng.randrange(7); m = 1 + rng.randrange(12); u = rng.randrange(users)
            d = os.path.join(root, f"{y}/{m:02d}/user{u:05d}")
            if d not in made:
                os.makedirs(d, exist_ok=True); made.add(d)
            size = rng.randint(1_000, 8_000)
            with open(os.path.join(d, f"upload-{i:06d}.{rng.choice(exts)}"), "wb") as f:
                f.write(rng.randbytes(size))
            total += size
        for i in range(sparse):
            d = os.path.join(root, "archive/video")
            os.makedirs(d, exist_ok=True)
            size = sparse_gib << 30
            with open(os.path.join(d, f"sparse-{i:02d}.mp4"), "wb") as f:
                f.truncate(size)
            total += size
    else:
        files = []
        for i in range(small):
            y = 2021 + rng.randrange(5); m = 1 + rng.randrange(12); u = rng.randrange(400)
            files.append((f"{y}/{m:02d}/user{u:04d}/upload-{i:05d}.{rng.choice(exts)}", rng.randint(2_000, 300_000)))
        for i in range(large):
            y = 2021 + rng.randrange(5); m = 1 + rng.randrange(12); u = rng.randrange(400)
            files.append((f"{y}/{m:02d}/user{u:04d}/video-{i:02d}.mp4", rng.randint(30_000_000, 120_000_000)))
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
