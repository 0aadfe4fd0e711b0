"""Read, write and compare classic pcap files with the Python standard library.

The integration tests and benchmarks judge Mirrorscope by comparing its pcap
output with an oracle (tcpdump, or the generator's own file), so they need a
reader that is exact about every field and loud about damaged files, without
depending on scapy or dpkt.

    read_pcap(path_or_bytes) -> (header, [(ts_ns, caplen, origlen, data), ...])
    iter_pcap(path_or_bytes) -> (header, iterator over the same records)
    write_pcap(path_or_file, records, nsec=True)
    compare(records_a, records_b) -> None if equal, else a sentence naming the
                                     first differing index and what differs

Timestamps are always integer nanoseconds, whatever the file's precision, so
a microsecond file and a nanosecond file with the same instants compare equal.

As a program:  python3 pcapfile.py A.pcap B.pcap
exits 0 when both hold the same packets, 1 (printing the first difference)
when they do not, 2 when a file cannot be read.
"""
import mmap
import struct
import sys

MAGIC_USEC = 0xA1B2C3D4
MAGIC_NSEC = 0xA1B23C4D
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
FILE_HEADER_LEN = 24
RECORD_HEADER_LEN = 16
DEFAULT_SNAPLEN = 262144
LINKTYPE_ETHERNET = 1

# The first four bytes, as stored, decide byte order and timestamp unit.
_MAGICS = {
    struct.pack("<I", MAGIC_USEC): ("<", False),
    struct.pack(">I", MAGIC_USEC): (">", False),
    struct.pack("<I", MAGIC_NSEC): ("<", True),
    struct.pack(">I", MAGIC_NSEC): (">", True),
}


class PcapError(ValueError):
    """The input is not a readable classic pcap file (bad magic, truncation)."""


def _source_bytes(src):
    """Bytes-like view of src: a path is memory-mapped so a multi-gigabyte
    file is not held twice (mapped pages plus the record copies)."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        return memoryview(src), None, "<bytes>"
    name = str(src)
    with open(src, "rb") as f:
        try:
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file: mmap refuses zero length
            return memoryview(b""), None, name
    return memoryview(m), m, name


def _parse_header(data, name):
    if len(data) < FILE_HEADER_LEN:
        if bytes(data[:4]) == PCAPNG_MAGIC:
            raise PcapError(f"{name}: pcapng is not supported, convert with editcap -F pcap")
        raise PcapError(f"{name}: truncated file header: {len(data)} of {FILE_HEADER_LEN} bytes")
    magic = bytes(data[:4])
    if magic == PCAPNG_MAGIC:
        raise PcapError(f"{name}: pcapng is not supported, convert with editcap -F pcap")
    if magic not in _MAGICS:
        raise PcapError(f"{name}: not a pcap file (magic {magic.hex()})")
    order, nsec = _MAGICS[magic]
    major, minor, thiszone, sigfigs, snaplen, linktype = struct.unpack_from(order + "HHiIII", data, 4)
    return {
        "magic": MAGIC_NSEC if nsec else MAGIC_USEC,
        "nsec": nsec,
        "order": order,
        "byteorder": "little" if order == "<" else "big",
        "version": (major, minor),
        "thiszone": thiszone,
        "sigfigs": sigfigs,
        "snaplen": snaplen,
        "linktype": linktype,
    }


def _records(data, header, name, keep_open=None):
    rec = struct.Struct(header["order"] + "IIII")
    mult = 1 if header["nsec"] else 1000
    off, n, index = FILE_HEADER_LEN, len(data), 0
    try:
        while off < n:
            if off + RECORD_HEADER_LEN > n:
                raise PcapError(f"{name}: truncated record header for packet {index} at offset "
                                f"{off}: {n - off} of {RECORD_HEADER_LEN} bytes")
            sec, frac, caplen, origlen = rec.unpack_from(data, off)
            off += RECORD_HEADER_LEN
            if off + caplen > n:
                raise PcapError(f"{name}: truncated data for packet {index} at offset {off}: "
                                f"{n - off} of {caplen} bytes")
            yield (sec * 1000000000 + frac * mult, caplen, origlen, bytes(data[off:off + caplen]))
            off += caplen
            index += 1
    finally:
        if keep_open is not None:
            data.release()
            keep_open.close()


def iter_pcap(src):
    """(header, iterator of records) without building the whole list."""
    data, mapping, name = _source_bytes(src)
    try:
        header = _parse_header(data, name)
    except PcapError:
        if mapping is not None:
            data.release()
            mapping.close()
        raise
    return header, _records(data, header, name, mapping)


def read_pcap(src):
    """(header, list of (ts_ns, caplen, origlen, data)) from a path or bytes.

    Raises PcapError naming the packet index and offset if the file is cut
    short, and for anything that is not classic pcap (including pcapng)."""
    header, records = iter_pcap(src)
    return header, list(records)


def whole_records(path):
    """The records wholly present in one of our segments (nanosecond,
    little-endian) that a crash may have left with a torn last record:
    (records, where the whole ones end, the file's size)."""
    data = open(path, "rb").read()
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, cap, orig = struct.unpack_from("<IIII", data, off)
        if off + 16 + cap > len(data):
            break
        out.append((sec * 1000000000 + frac, cap, orig, data[off + 16:off + 16 + cap]))
        off += 16 + cap
    return out, off, len(data)


def _frac(ts_ns, nsec):
    return ts_ns % 1000000000 if nsec else (ts_ns % 1000000000) // 1000


def write_pcap(dst, records, nsec=True, linktype=LINKTYPE_ETHERNET, snaplen=DEFAULT_SNAPLEN):
    """Writes records (ts_ns, caplen, origlen, data) as little-endian pcap to
    a path or a binary file object.  With nsec=False timestamps are truncated
    to microseconds.  caplen must equal len(data)."""
    f = dst if hasattr(dst, "write") else open(dst, "wb")
    try:
        f.write(struct.pack("<IHHiIII", MAGIC_NSEC if nsec else MAGIC_USEC, 2, 4, 0, 0,
                            snaplen, linktype))
        for i, (ts, caplen, origlen, data) in enumerate(records):
            if caplen != len(data):
                raise ValueError(f"record {i}: caplen {caplen} but {len(data)} data bytes")
            f.write(struct.pack("<IIII", ts // 1000000000, _frac(ts, nsec), caplen, origlen))
            f.write(data)
    finally:
        if f is not dst:
            f.close()


def _ts_str(ns):
    return f"{ns // 1000000000}.{ns % 1000000000:09d}"


def _first_byte_diff(x, y):
    for i, (p, q) in enumerate(zip(x, y)):
        if p != q:
            return f"bytes differ at offset {i} (0x{p:02x} vs 0x{q:02x})"
    return f"bytes differ in length ({len(x)} vs {len(y)}), equal up to offset {min(len(x), len(y))}"


def _record_diff(x, y):
    what = []
    if x[0] != y[0]:
        what.append(f"ts {_ts_str(x[0])} vs {_ts_str(y[0])}")
    if x[1] != y[1]:
        what.append(f"caplen {x[1]} vs {y[1]}")
    if x[2] != y[2]:
        what.append(f"origlen {x[2]} vs {y[2]}")
    if bytes(x[3]) != bytes(y[3]):
        what.append(_first_byte_diff(bytes(x[3]), bytes(y[3])))
    return "; ".join(what)


def compare(a, b):
    """None if both record lists are equal, else a sentence naming the first
    differing index and every field that differs there (ts, caplen, origlen,
    bytes), or the packet counts when one list is a prefix of the other."""
    a = a if hasattr(a, "__len__") else list(a)
    b = b if hasattr(b, "__len__") else list(b)
    for i, (x, y) in enumerate(zip(a, b)):
        if tuple(x[:3]) != tuple(y[:3]) or bytes(x[3]) != bytes(y[3]):
            return f"packet {i} differs: {_record_diff(x, y)}"
    if len(a) != len(b):
        longer = "first" if len(a) > len(b) else "second"
        return (f"packet count differs: {len(a)} vs {len(b)} (the first {min(len(a), len(b))} "
                f"are equal; the {longer} has more, starting at index {min(len(a), len(b))})")
    return None


def main(argv):
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print("usage: pcapfile.py A.pcap B.pcap\n"
              "Exit 0 if both files hold the same packets (timestamps in ns, lengths, bytes),\n"
              "1 and the first difference if not, 2 if a file cannot be read.")
        return 0
    if len(argv) != 3:
        print("usage: pcapfile.py A.pcap B.pcap (try --help)", file=sys.stderr)
        return 2
    try:
        a = read_pcap(argv[1])[1]
        b = read_pcap(argv[2])[1]
    except (OSError, PcapError) as e:
        print(f"pcapfile: {e}", file=sys.stderr)
        return 2
    diff = compare(a, b)
    if diff:
        print(f"{argv[1]} vs {argv[2]}: {diff}")
        return 1
    print(f"same packets: {len(a)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
