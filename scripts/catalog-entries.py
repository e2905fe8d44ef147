#!/usr/bin/env python3
"""catalog-entries.py - how many entries `find events` lists for a catalog image.

An oracle independent of the daemon: it reads the catalog file with its own parser (the format
is documented in crates/eventfs-core/src/catalog.rs) and counts what tracefs shows under
events/: the directory itself and its three files (enable, header_page, header_event), then
per system its directory and the files its mask names, and per event its directory and the
files its mask names.

Usage: scripts/catalog-entries.py [CATALOG]   (default: the embedded catalog)
Prints the count; exits 1 with a message on a malformed or unsupported image.
"""
import os
import struct
import sys

MAGIC = b"EVFSCAT\0"
VERSIONS = (2, 3)  # 3 added available_filter_functions after trace_clock
HEADER_LEN = 32
EVENTS_ROOT_FILES = 3  # enable, header_page, header_event
DEFAULT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "crates/eventfs-core/catalog/default.evcat",
)


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Body:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def u32(self):
        if self.pos + 4 > len(self.data):
            raise ValueError("body ends inside a number")
        (v,) = struct.unpack_from("<I", self.data, self.pos)
        self.pos += 4
        return v

    def string(self):
        n = self.u32()
        if self.pos + n > len(self.data):
            raise ValueError("body ends inside a string")
        s = self.data[self.pos : self.pos + n]
        self.pos += n
        return s.decode("utf-8")


def count(path):
    with open(path, "rb") as f:
        image = f.read()
    if len(image) < HEADER_LEN or image[:8] != MAGIC:
        raise ValueError("not a catalog image")
    version, _, body_len, checksum = struct.unpack_from("<IIQQ", image, 8)
    if version not in VERSIONS:
        raise ValueError(f"catalog version {version}, this reader knows {VERSIONS}")
    body = image[HEADER_LEN:]
    if len(body) != body_len or fnv1a64(body) != checksum:
        raise ValueError("length or checksum mismatch")
    b = Body(body)
    for _ in range(6):  # release, header_page, header_event, README, tracers, clock
        b.string()
    if version >= 3:
        b.string()  # available_filter_functions
    for _ in range(b.u32()):  # options
        b.string()
        b.u32()
    entries = 1 + EVENTS_ROOT_FILES
    for _ in range(b.u32()):  # systems
        b.string()
        entries += 1 + bin(b.u32()).count("1")
        for _ in range(b.u32()):  # events
            b.string()
            b.u32()  # id
            entries += 1 + bin(b.u32()).count("1")
            b.string()  # format
    if b.pos != len(body):
        raise ValueError("trailing bytes after the last system")
    return entries


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    try:
        print(count(path))
    except (OSError, ValueError) as e:
        print(f"catalog-entries: {path}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
