"""Flow helpers for the broker tests: the symmetric (connection) key of an
Ethernet frame, read with the standard library only."""
import struct


def conn_key(d):
    """(proto, sorted endpoints) of an IPv4/IPv6 frame, both directions
    alike; None for anything else (non-IP, IPv6 extension headers)."""
    off = 12
    if len(d) < 14:
        return None
    et = struct.unpack("!H", d[off:off + 2])[0]
    while et in (0x8100, 0x88A8, 0x9100) and len(d) >= off + 6:
        off += 4
        et = struct.unpack("!H", d[off:off + 2])[0]
    off += 2
    if et == 0x0800 and len(d) >= off + 20:
        ihl = (d[off] & 15) * 4
        p = d[off + 9]
        a, b = bytes(d[off + 12:off + 16]), bytes(d[off + 16:off + 20])
        l4 = off + ihl
    elif et == 0x86DD and len(d) >= off + 40:
        p = d[off + 6]
        a, b = bytes(d[off + 8:off + 24]), bytes(d[off + 24:off + 40])
        l4 = off + 40
    else:
        return None
    sp = dp = 0
    if p in (6, 17) and len(d) >= l4 + 4:
        sp, dp = struct.unpack("!HH", d[l4:l4 + 4])
    return (p,) + tuple(sorted([(a, sp), (b, dp)]))
