#!/usr/bin/env python3
"""A peer of fdpass's classic wire that uses nothing but Python's own
`socket.send_fds` and `socket.recv_fds`, as a Python program would.

The socket is descriptor --fd (default 0, standard input). Descriptor k is
the read end of a pipe holding the 8-byte little-endian number --base + k,
with its write end closed.

  send --count N   sends N descriptors, each with `send_fds(sock, [b"\\0"],
                   [fd])`, then ends its side of the stream and reads to the
                   end (a native peer's hello may arrive meanwhile: it is
                   reported as `bytes_without_descriptors`).
  recv --count N   receives N descriptors, each with `recv_fds(sock, 1, 1)`,
                   requiring one zero byte with exactly one descriptor and no
                   truncation, checks each number, then requires the end of
                   the stream.
  recv-any         reads with `recv_fds(sock, 4096, 253)` to the end and
                   reports what arrived: `bytes`, `descriptors`, and the
                   first bytes in hex (`first`).

Output: `PEER-RESULT key=value` lines, then `PEER-DONE`.
"""

import argparse
import os
import socket
import struct
import sys


def report(key, value):
    print(f"PEER-RESULT {key}={value}", flush=True)


def numbered_pipe(value):
    read_end, write_end = os.pipe()
    os.write(write_end, struct.pack("<Q", value))
    os.close(write_end)
    return read_end


def read_number(fd):
    data = b""
    while True:
        chunk = os.read(fd, 16)
        if not chunk:
            break
        data += chunk
    os.close(fd)
    if len(data) != 8:
        raise AssertionError(f"a numbered pipe holds 8 bytes, got {len(data)}")
    return struct.unpack("<Q", data)[0]


def mode_send(sock, args):
    for k in range(args.count):
        fd = numbered_pipe(args.base + k)
        try:
            sent = socket.send_fds(sock, [b"\0"], [fd], socket.MSG_NOSIGNAL)
        finally:
            os.close(fd)
        if sent != 1:
            raise AssertionError(f"send_fds sent {sent} bytes")
    sock.shutdown(socket.SHUT_WR)
    stray_bytes = 0
    while True:
        data, fds, _flags, _ = socket.recv_fds(sock, 4096, 1)
        for fd in fds:
            os.close(fd)
        if not data and not fds:
            break
        stray_bytes += len(data)
    report("sent", args.count)
    report("bytes_without_descriptors", stray_bytes)


def mode_recv(sock, args):
    for k in range(args.count):
        data, fds, flags, _ = socket.recv_fds(sock, 1, 1)
        if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
            raise AssertionError(f"descriptor {k}: truncated (flags {flags:#x})")
        if data != b"\0" or len(fds) != 1:
            raise AssertionError(f"descriptor {k}: {data!r} with {len(fds)} descriptors")
        got = read_number(fds[0])
        if got != args.base + k:
            raise AssertionError(f"descriptor {k}: number {got}, not {args.base + k}")
    data, fds, _flags, _ = socket.recv_fds(sock, 1, 1)
    if data or fds:
        raise AssertionError(f"more than {args.count} descriptors arrived")
    report("received", args.count)


def mode_recv_any(sock, _args):
    total_bytes = 0
    total_fds = 0
    first = b""
    while True:
        data, fds, _flags, _ = socket.recv_fds(sock, 4096, 253)
        for fd in fds:
            os.close(fd)
        if not data and not fds:
            break
        if not first:
            first = data[:24]
        total_bytes += len(data)
        total_fds += len(fds)
    report("bytes", total_bytes)
    report("descriptors", total_fds)
    report("first", first.hex() or "-")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, default=0)
    parser.add_argument("mode", choices=("send", "recv", "recv-any"))
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--base", type=int, default=0)
    args = parser.parse_args()
    sock = socket.socket(fileno=args.fd)
    sock.setblocking(True)
    {"send": mode_send, "recv": mode_recv, "recv-any": mode_recv_any}[args.mode](sock, args)
    sock.close()
    print("PEER-DONE", flush=True)


if __name__ == "__main__":
    sys.exit(main())
