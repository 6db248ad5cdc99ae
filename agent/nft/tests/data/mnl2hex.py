#!/usr/bin/env python3
"""Turn `nft --debug=mnl` output into one line per netlink message: `<type> <payload hex>`.

The payload is everything after the 16-byte nlmsghdr (nfgenmsg + attributes), exactly as libmnl
laid it out; header flags are not printed in full by nft, so they are left out.
"""
import re, sys
ansi = re.compile(r"\x1b\[[0-9;]*m")
msgs, cur, state = [], None, None
for raw in sys.stdin:
    line = ansi.sub("", raw.rstrip("\n"))
    m = re.match(r"\|\s*(\d+)\s*\|\s*([RMAE-]{4})\s*\|\s*\|\s*type \| flags", line)
    m2 = re.match(r"\|\s*(\d+)\s*\|\s*\|\s*message length", line)
    if m2:
        cur = {"type": None, "bytes": bytearray()}; msgs.append(cur); continue
    m = re.match(r"\|\s*(\d+)\s*\|\s*[RMAE-]+\s*\|\s*\|\s*type", line)
    if m and cur is not None:
        cur["type"] = int(m.group(1)); continue
    m = re.match(r"\|\s*((?:[0-9a-f]{2} ){3}[0-9a-f]{2})\s*\|\s*\|\s*(extra header|data)", line)
    if m and cur is not None:
        cur["bytes"] += bytes(int(x, 16) for x in m.group(1).split()); continue
    m = re.match(r"\|(\d{5})\|([N-])([B-])\|(\d{5})\|", line)
    if m and cur is not None:
        ln, t = int(m.group(1)), int(m.group(4))
        if m.group(2) == "N": t |= 0x8000
        if m.group(3) == "B": t |= 0x4000
        cur["bytes"] += ln.to_bytes(2, "little") + t.to_bytes(2, "little"); continue
for m in msgs:
    print(m["type"], m["bytes"].hex())
