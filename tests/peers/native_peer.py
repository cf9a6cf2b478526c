#!/usr/bin/env python3
"""A peer of fdpass's native wire, written from docs/wire.md alone.

Python 3 standard library only. It speaks version 1 of the native wire over
a connected AF_UNIX socket (SOCK_STREAM or SOCK_SEQPACKET): its hello first,
then message frames of payload bytes plus descriptors, several frames per
sendmsg when --batch allows, within the limits the peer announced.

The socket is descriptor --fd (default 0, standard input) or a connection to
--connect PATH. Modes:

  send --count N --base B   sends messages 0..N-1 (see `shape`), then ends
                            its side of the stream and reads to the end,
                            requiring that nothing arrives.
  recv --count N --base B   receives N messages, checks each against
                            `shape`, then requires the peer's orderly close.
  exchange                  send (--count, --base), then recv (--recv-count,
                            --recv-base), on the one connection.
  echo                      sends every message it receives back, unchanged
                            and in order, until the peer's orderly close.
  hello                     sends only its hello, then reads to the end (a
                            peer's error shows as PEER-ERROR).
  rush --count N --base B   a peer that cannot wait: right after its hello,
                            without the peer's, one send of N payload-less
                            frames of one descriptor each, numbered B, B + 1,
                            ... (beyond rule 4 before the peer's hello); then
                            the end of its side, and reads to the end.

Message i has `shape(i)`: a payload and descriptors. Descriptor j of message
i is the read end of a pipe holding the 8-byte little-endian number
B + 1000 * i + j, with its write end closed, so reading it proves which
descriptor arrived. The program on the other end computes the same shapes.
With --fds-only the messages carry no payload and N counts descriptors,
numbered B, B + 1, ...: sent in messages of GROUPS' sizes in turn, received
in messages of any size.

Output on standard output: `PEER-RESULT key=value` lines, then `PEER-DONE`
on success. A protocol error of the peer prints `PEER-ERROR <name>` (named as
in wire.md's table) and exits with status 3; any other failure exits with a
traceback (status 1).
"""

import argparse
import array
import os
import select
import socket
import struct
import sys
from collections import deque

# --- The wire (docs/wire.md, "The native wire (version 1)") ---------------

HEADER = struct.Struct(">BBBBI")  # kind, fds, batch_fds, reserved, length
HEADER_LEN = 8
KIND_HELLO = 0x48
KIND_MESSAGE = 0x4D
HELLO_BODY = struct.Struct(">8sBBHI")  # magic, min, max, max_fds, max_payload
HELLO_LEN = HEADER_LEN + HELLO_BODY.size  # 24
MAGIC = b"fdpass\r\n"
VERSION = 1
# What a sender may put in one send before the peer's hello has arrived.
MIN_FDS = 1
MIN_PAYLOAD = 4096
FD_SIZE = array.array("i").itemsize


class PeerError(Exception):
    """The peer broke the wire; `name` is the error's name in wire.md."""

    def __init__(self, name, detail=""):
        super().__init__(f"{name}: {detail}")
        self.name = name


def hello_bytes(max_fds, max_payload, min_version=VERSION, max_version=VERSION):
    """Our hello: 24 bytes (wire.md, "Frames")."""
    return HEADER.pack(KIND_HELLO, 0, 0, 0, HELLO_BODY.size) + HELLO_BODY.pack(
        MAGIC, min_version, max_version, max_fds, max_payload
    )


def frame_bytes(payload, fds, batch_fds):
    """One message frame: header, then its payload."""
    return HEADER.pack(KIND_MESSAGE, fds, batch_fds, 0, len(payload)) + payload


class Wire:
    """One end of the native wire over a blocking socket."""

    def __init__(self, sock, max_fds, max_payload, batch):
        self.sock = sock
        self.seqpacket = sock.type == socket.SOCK_SEQPACKET
        self.max_fds = max_fds
        self.max_payload = max_payload
        self.batch = batch
        # Receiving: bytes read and not yet parsed, descriptors not yet
        # claimed, whole messages not yet taken.
        self.buffer = bytearray()
        self.fd_queue = deque()
        self.messages = deque()
        self.peer_hello = None  # (max_fds, max_payload) once it has arrived
        self.peer_closed = False
        # The frame whose header was parsed and whose payload is awaited.
        self.pending = None
        self.sends = 0
        self.frames_sent = 0

    # --- sending ----------------------------------------------------------

    def send_hello(self, min_version=VERSION, max_version=VERSION):
        """Rule 1: the hello goes first, alone, without waiting."""
        self._sendmsg(
            hello_bytes(self.max_fds, self.max_payload, min_version, max_version), []
        )

    def limits(self):
        """(descriptors, bytes) one send may carry now (rule 4)."""
        if self.peer_hello is None:
            return MIN_FDS, HEADER_LEN + MIN_PAYLOAD
        peer_fds, peer_payload = self.peer_hello
        return peer_fds, HEADER_LEN + peer_payload

    def send_messages(self, messages):
        """Sends (payload, [fd]) pairs in order, up to `batch` frames per
        sendmsg, never beyond what the peer can take (rules 2 to 4). The
        descriptors stay ours: the caller closes them."""
        queue = deque(messages)
        while queue:
            payload, fds = queue[0]
            self._poll_incoming()
            if not self._fits_now(payload, fds):
                if self.peer_hello is not None:
                    peer_fds, peer_payload = self.peer_hello
                    raise AssertionError(
                        f"a message of {len(fds)} descriptors and {len(payload)} "
                        f"bytes exceeds the peer's limits ({peer_fds}, {peer_payload})"
                    )
                # Larger messages wait for the peer's hello.
                self._wait_for_hello()
                continue
            max_fds, max_bytes = self.limits()
            frames = []
            attached = []
            size = 0
            while queue and len(frames) < self.batch:
                payload, fds = queue[0]
                grown = size + HEADER_LEN + len(payload)
                if grown > max_bytes or len(attached) + len(fds) > max_fds:
                    break
                if len(payload) > self._peer_payload() or len(fds) > max_fds:
                    break
                queue.popleft()
                frames.append((payload, fds))
                attached.extend(fds)
                size = grown
            data = bytearray()
            for n, (payload, fds) in enumerate(frames):
                # Rule 3: the first frame of a send says how many
                # descriptors the send carries; the others say 0.
                data += frame_bytes(payload, len(fds), len(attached) if n == 0 else 0)
            self._sendmsg(bytes(data), attached)
            self.frames_sent += len(frames)

    def _peer_payload(self):
        return MIN_PAYLOAD if self.peer_hello is None else self.peer_hello[1]

    def _fits_now(self, payload, fds):
        max_fds, max_bytes = self.limits()
        return (
            len(fds) <= max_fds
            and HEADER_LEN + len(payload) <= max_bytes
            and len(payload) <= self._peer_payload()
        )

    def _sendmsg(self, data, fds):
        ancillary = []
        if fds:
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        sent = self.sock.sendmsg([data], ancillary, socket.MSG_NOSIGNAL)
        self.sends += 1
        # Rule 2: a stream socket may take part of a send; the rest follows
        # without descriptors before any other frame.
        while sent < len(data):
            if self.seqpacket:
                raise AssertionError("a SOCK_SEQPACKET send was cut short")
            sent += self.sock.send(data[sent:], socket.MSG_NOSIGNAL)

    def end_sending(self):
        self.sock.shutdown(socket.SHUT_WR)

    # --- receiving --------------------------------------------------------

    def _poll_incoming(self):
        """Reads what already waits, without blocking."""
        while not self.peer_closed:
            readable, _, _ = select.select([self.sock], [], [], 0)
            if not readable:
                return
            self._read()

    def _wait_for_hello(self):
        while self.peer_hello is None:
            if self.peer_closed:
                raise AssertionError("the peer closed before its hello")
            self._read()

    def recv_message(self):
        """The next message as (payload, [fd]), or None at the peer's
        orderly close."""
        while not self.messages:
            if self.peer_closed:
                return None
            self._read()
        return self.messages.popleft()

    def _read(self):
        """One recvmsg (receiving, rule 3), then everything it completes."""
        bufsize = HEADER_LEN + self.max_payload
        space = socket.CMSG_SPACE(self.max_fds * FD_SIZE)
        data, ancillary, flags, _ = self.sock.recvmsg(
            bufsize, space, socket.MSG_CMSG_CLOEXEC
        )
        fds = []
        foreign = False
        for level, kind, body in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(body[: len(body) - len(body) % FD_SIZE])
                fds.extend(received)
            else:
                foreign = True
        # Whatever goes wrong below, no descriptor received is left open.
        self.fd_queue.extend(fds)
        if flags & socket.MSG_CTRUNC:
            raise PeerError("TooManyDescriptors", "control data cut short (MSG_CTRUNC)")
        if foreign:
            raise PeerError("ForeignControlMessage")
        if flags & socket.MSG_TRUNC:
            raise PeerError("MessageTooLong", "a record longer than the read buffer")
        if not data and not fds:
            self.peer_closed = True
            if self.buffer or self.pending is not None:
                raise PeerError("FrameCutShort")
            if self.fd_queue:
                raise PeerError("DescriptorsWithoutFrame", "descriptors at the end")
            return
        # Descriptors came with the hello's own send only if this read
        # brought no byte beyond the hello: a stream read may join the
        # hello (no descriptors) with the next send and its descriptors.
        if self.peer_hello is None and fds and len(self.buffer) + len(data) <= HELLO_LEN:
            raise PeerError("ClassicPeer", "descriptors before the hello")
        self.buffer += data
        self._parse()
        if len(self.fd_queue) > self.max_fds:
            raise PeerError("DescriptorsWithoutFrame", f"{len(self.fd_queue)} unclaimed")

    def _parse(self):
        while True:
            if self.peer_hello is None:
                if self.buffer[:1] == b"\0":
                    raise PeerError("ClassicPeer", "a 0x00 byte first")
                if len(self.buffer) < HELLO_LEN:
                    return
                self._parse_hello(bytes(self.buffer[:HELLO_LEN]))
                del self.buffer[:HELLO_LEN]
                continue
            if self.pending is None:
                if len(self.buffer) < HEADER_LEN:
                    return
                kind, fds, batch_fds, reserved, length = HEADER.unpack_from(self.buffer)
                del self.buffer[:HEADER_LEN]
                if kind != KIND_MESSAGE or reserved != 0:
                    raise PeerError("BadFrame", f"kind {kind:#x}, reserved {reserved}")
                if fds > self.max_fds or batch_fds > self.max_fds:
                    raise PeerError("TooManyDescriptors", f"fds {fds}, batch {batch_fds}")
                if length > self.max_payload:
                    raise PeerError("PayloadTooLong", f"{length} bytes")
                # Receiving, rule 2: the complete header claims its
                # descriptors from the front of the queue.
                if fds > len(self.fd_queue):
                    raise PeerError(
                        "MissingDescriptors", f"{fds} claimed, {len(self.fd_queue)} queued"
                    )
                claimed = [self.fd_queue.popleft() for _ in range(fds)]
                self.pending = (length, claimed)
            length, claimed = self.pending
            if len(self.buffer) < length:
                return
            payload = bytes(self.buffer[:length])
            del self.buffer[:length]
            self.pending = None
            self.messages.append((payload, claimed))

    def _parse_hello(self, hello):
        kind, fds, batch_fds, reserved, length = HEADER.unpack_from(hello)
        magic, min_version, max_version, max_fds, max_payload = HELLO_BODY.unpack_from(
            hello, HEADER_LEN
        )
        if (kind, fds, batch_fds, reserved, length) != (
            KIND_HELLO,
            0,
            0,
            0,
            HELLO_BODY.size,
        ) or magic != MAGIC:
            raise PeerError("BadHello", hello.hex())
        version = min(VERSION, max_version)
        if version < VERSION or version < min_version:
            raise PeerError("UnsupportedVersion", f"{min_version}..={max_version}")
        if not 1 <= max_fds <= 253 or max_payload < MIN_PAYLOAD:
            raise PeerError("BadHello", f"limits {max_fds}, {max_payload}")
        self.peer_hello = (max_fds, max_payload)

    def close_unclaimed(self):
        for fd in self.fd_queue:
            os.close(fd)
        self.fd_queue.clear()


# --- The messages both ends compute --------------------------------------

FDS = (0, 1, 2, 0, 3, 1, 0, 7)
LENGTHS = (0, 64, 0, 5, 4096, 1, 300)
# Every LARGE_EVERY-th message (at LARGE_EVERY // 2) is too large to go
# before the receiver's hello: LARGE_FDS descriptors and LARGE_PAYLOAD bytes.
LARGE_EVERY = 50
LARGE_FDS = 40
LARGE_PAYLOAD = 65536


def shape(i):
    """(payload, number of descriptors) of message i."""
    if i % LARGE_EVERY == LARGE_EVERY // 2:
        fds, length = LARGE_FDS, LARGE_PAYLOAD
    else:
        fds, length = FDS[i % len(FDS)], LENGTHS[i % len(LENGTHS)]
    payload = bytes((i * 131 + k * 7 + 1) & 0xFF for k in range(length))
    return payload, fds


def number(base, i, j):
    return base + 1000 * i + j


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


# --- Modes ----------------------------------------------------------------

# --fds-only: descriptors base, base + 1, ... in messages without payload of
# these sizes in turn (the last one cut short at --count descriptors).
GROUPS = (1, 2, 3, 7, 1, 40)


def report(key, value):
    print(f"PEER-RESULT {key}={value}", flush=True)


def outgoing(count, base, fds_only):
    """The messages `send` sends: `count` messages of `shape`, or with
    --fds-only `count` descriptors in payload-less messages of GROUPS."""
    if not fds_only:
        messages = []
        for i in range(count):
            payload, nfds = shape(i)
            messages.append((payload, [numbered_pipe(number(base, i, j)) for j in range(nfds)]))
        return messages
    messages = []
    k = 0
    while k < count:
        size = min(GROUPS[len(messages) % len(GROUPS)], count - k)
        messages.append((b"", [numbered_pipe(base + k + j) for j in range(size)]))
        k += size
    return messages


def check_incoming(wire, count, base, fds_only):
    """Receives and checks what `outgoing(count, base, fds_only)` sends (with
    --fds-only, in payload-less messages of any sizes), then the end."""
    k = 0
    i = 0
    while k < count if fds_only else i < count:
        message = wire.recv_message()
        if message is None:
            raise AssertionError(f"the peer closed after {i} messages, {k} descriptors")
        payload, fds = message
        if fds_only:
            if payload or not fds:
                raise AssertionError(f"message {i}: {len(payload)} bytes, {len(fds)} descriptors")
            for fd in fds:
                got = read_number(fd)
                if got != base + k:
                    raise AssertionError(f"descriptor {k}: number {got}")
                k += 1
            i += 1
            continue
        want_payload, want_fds = shape(i)
        if payload != want_payload:
            for fd in fds:
                os.close(fd)
            raise AssertionError(
                f"message {i}: payload of {len(payload)} bytes, not the "
                f"{len(want_payload)} expected (or different bytes)"
            )
        if len(fds) != want_fds:
            raise AssertionError(f"message {i}: {len(fds)} descriptors, not {want_fds}")
        for j, fd in enumerate(fds):
            got = read_number(fd)
            if got != number(base, i, j):
                raise AssertionError(f"message {i}, descriptor {j}: number {got}")
        k += len(fds)
        i += 1
    report("received_messages", i)
    report("received_descriptors", k)


def send_all(wire, messages):
    wire.send_messages(messages)
    for _, fds in messages:
        for fd in fds:
            os.close(fd)
    report("sends", wire.sends)
    report("frames", wire.frames_sent)


def expect_end(wire):
    extra = 0
    while True:
        message = wire.recv_message()
        if message is None:
            break
        for fd in message[1]:
            os.close(fd)
        extra += 1
    if extra:
        raise AssertionError(f"{extra} messages more than expected arrived")


def mode_send(wire, args):
    send_all(wire, outgoing(args.count, args.base, args.fds_only))
    wire.end_sending()
    expect_end(wire)


def mode_recv(wire, args):
    check_incoming(wire, args.count, args.base, args.fds_only)
    expect_end(wire)


def mode_exchange(wire, args):
    """send, then recv with --recv-count and --recv-base, on one connection."""
    send_all(wire, outgoing(args.count, args.base, args.fds_only))
    check_incoming(wire, args.recv_count, args.recv_base, args.fds_only)
    wire.end_sending()
    expect_end(wire)


def mode_echo(wire, _args):
    echoed = 0
    while True:
        message = wire.recv_message()
        if message is None:
            break
        # Everything already parsed goes back together, so that frames are
        # batched as the peer's were.
        batch = [message]
        while wire.messages:
            batch.append(wire.messages.popleft())
        wire.send_messages(batch)
        for _, fds in batch:
            for fd in fds:
                os.close(fd)
        echoed += len(batch)
    wire.end_sending()
    report("echoed", echoed)
    report("sends", wire.sends)


def mode_rush(wire, args):
    """A peer that cannot wait: at once after its hello, without the peer's,
    one send of --count payload-less frames of one descriptor each (more
    than rule 4 allows before the peer's hello), then the end of its side."""
    fds = [numbered_pipe(args.base + k) for k in range(args.count)]
    data = b"".join(
        frame_bytes(b"", 1, len(fds) if k == 0 else 0) for k in range(len(fds))
    )
    wire._sendmsg(data, fds)
    for fd in fds:
        os.close(fd)
    wire.end_sending()
    while True:
        try:
            if wire.recv_message() is None:
                break
        except (PeerError, ConnectionResetError):
            break
    report("sends", wire.sends)


def mode_hello(wire, _args):
    expect_end(wire)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, default=0)
    parser.add_argument("--connect")
    parser.add_argument("--max-fds", type=int, default=128)
    parser.add_argument("--max-payload", type=int, default=65536)
    parser.add_argument("--batch", type=int, default=1, help="frames per sendmsg at most")
    parser.add_argument("--min-version", type=int, default=VERSION)
    parser.add_argument("--max-version", type=int, default=VERSION)
    parser.add_argument("--fds-only", action="store_true")
    parser.add_argument("mode", choices=("send", "recv", "exchange", "echo", "rush", "hello"))
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--base", type=int, default=0)
    parser.add_argument("--recv-count", type=int, default=0)
    parser.add_argument("--recv-base", type=int, default=0)
    args = parser.parse_args()

    if args.connect:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(args.connect)
    else:
        sock = socket.socket(fileno=args.fd)
    sock.setblocking(True)
    wire = Wire(sock, args.max_fds, args.max_payload, args.batch)
    try:
        wire.send_hello(args.min_version, args.max_version)
        modes = {
            "send": mode_send,
            "recv": mode_recv,
            "exchange": mode_exchange,
            "echo": mode_echo,
            "rush": mode_rush,
            "hello": mode_hello,
        }
        modes[args.mode](wire, args)
    except PeerError as error:
        wire.close_unclaimed()
        print(f"PEER-ERROR {error.name} {error}", flush=True)
        sys.exit(3)
    sock.close()
    print("PEER-DONE", flush=True)


if __name__ == "__main__":
    main()
