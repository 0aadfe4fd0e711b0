"""Read, write and compare pcap files with the standard library only.

read_pcap(path_or_bytes) -> (header, [(ts_ns, caplen, origlen, data), ...])
write_pcap(path, records, nsec=True)
compare(a, b) -> None when equal, else a sentence naming the first difference
`python3 pcapfile.py A B` compares two files (exit 0 equal, 1 different).
"""
import struct
import sys

MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),
    b"\xa1\xb2\x3c\x4d": (">", 1),
}


class PcapError(Exception):
    pass


def read_pcap(src):
    data = src if isinstance(src, (bytes, bytearray)) else open(src, "rb").read()
    if len(data) < 24:
        raise PcapError(f"pcap too short for a file header ({len(data)} bytes)")
    if data[:4] not in MAGICS:
        raise PcapError(f"not a pcap file (magic {data[:4].hex()})")
    order, mult = MAGICS[data[:4]]
    major, minor, _, _, snaplen, linktype = struct.unpack_from(order + "HHiIII", data, 4)
    header = {"nsec": mult == 1, "snaplen": snaplen, "linktype": linktype, "order": order}
    recs, off, n = [], 24, len(data)
    rec = struct.Struct(order + "IIII")
    while off < n:
        if off + 16 > n:
            raise PcapError(f"truncated record header at offset {off}")
        sec, frac, cap, orig = rec.unpack_from(data, off)
        off += 16
        if off + cap > n:
            raise PcapError(f"truncated record data at offset {off} ({cap} bytes wanted)")
        recs.append((sec * 1000000000 + frac * mult, cap, orig, bytes(data[off:off + cap])))
        off += cap
    return header, recs


def write_pcap(path, records, nsec=True):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b23c4d if nsec else 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
        for ts, cap, orig, data in records:
            frac = ts % 1000000000 if nsec else (ts % 1000000000) // 1000
            f.write(struct.pack("<IIII", ts // 1000000000, frac, cap, orig))
            f.write(data)


def compare(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            what = []
            if x[0] != y[0]:
                what.append(f"time {x[0]} vs {y[0]}")
            if x[1] != y[1] or x[2] != y[2]:
                what.append(f"lengths {x[1]}/{x[2]} vs {y[1]}/{y[2]}")
            if x[3] != y[3]:
                what.append("bytes differ")
            return f"packet {i} differs: " + ", ".join(what)
    if len(a) != len(b):
        return f"{len(a)} packets vs {len(b)} (first {min(len(a), len(b))} equal)"
    return None


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: pcapfile.py A.pcap B.pcap", file=sys.stderr)
        sys.exit(2)
    d = compare(read_pcap(sys.argv[1])[1], read_pcap(sys.argv[2])[1])
    if d:
        print(d)
        sys.exit(1)
    print(f"same packets")
