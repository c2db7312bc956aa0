#!/usr/bin/env python3
"""A plain TCP relay that counts the bytes clients send upstream.

byte-relay.py LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT COUNT_FILE: forwards
every connection unchanged (the Host header the client signed reaches the
server as sent) and writes the running total of client-to-server bytes to
COUNT_FILE every 0.1 s, and the number of HTTP requests (request lines seen
in the client-to-server stream) to COUNT_FILE.requests. Used by scripts/bench/migrate to measure what each
tool sends, whatever its checksum headers (the strict proxy refuses awscli's
parts without Content-MD5).
"""
import asyncio, os, re, sys

total = 0
requests = 0
REQUEST_LINE = re.compile(rb"(?:GET|PUT|POST|HEAD|DELETE) /[^ \r\n]* HTTP/1\.1\r\n")

async def pipe(reader, writer, count):
    global total, requests
    tail = b""   # a request line split between two reads is counted once
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            if count:
                total += len(data)
                buf = tail + data
                requests += sum(1 for m in REQUEST_LINE.finditer(buf) if m.end() > len(tail))
                tail = buf[-2200:]
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass

async def handle(cr, cw, host, port):
    try:
        ur, uw = await asyncio.open_connection(host, port)
    except OSError:
        cw.close()
        return
    await asyncio.gather(pipe(cr, uw, True), pipe(ur, cw, False))

async def report(path):
    while True:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{total}\n")
        os.replace(tmp, path)
        with open(tmp, "w") as f:
            f.write(f"{requests}\n")
        os.replace(tmp, path + ".requests")
        await asyncio.sleep(0.1)

async def main():
    port, host, uport, path = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    server = await asyncio.start_server(lambda r, w: handle(r, w, host, uport), "127.0.0.1", port)
    asyncio.get_running_loop().create_task(report(path))
    async with server:
        await server.serve_forever()

asyncio.run(main())
