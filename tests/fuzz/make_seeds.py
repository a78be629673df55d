#!/usr/bin/env python3
"""Writes the seed corpora of bigbro's fuzz targets into tests/fuzz/seeds/TARGET/.

Sources: the repository's example configurations (config/*.yml, tests/fixtures/*.yml),
litmus_paper answers as big_brother.md describes them plus hostile ones, and real netlink
traffic: ipvsadm 1.31's IPVS messages and nft's batch, both from strace captures
(tests/data/nft_sendmsg_raw.txt in the repository; the IPVS one from the reference
captures, path given as the first argument). The seeds are committed; rerun this only to
regenerate them.
"""
import hashlib
import pathlib
import re
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEEDS = ROOT / "tests/fuzz/seeds"
IPVS_CAPTURE = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                            "/work/shared/reference/captures/ipvsadm_strace_netlink.txt")


def write(target, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


# ---- config ---------------------------------------------------------------------------------
for f in sorted(list((ROOT / "config").glob("*.yml")) + list((ROOT / "tests/fixtures").glob("*.yml"))):
    write("config", f.read_bytes())

# ---- litmus: [mode, chunk, limits] + answer -------------------------------------------------
ANSWERS = [
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Health: 82\r\nContent-Length: 35\r\n\r\nHealth: 82\nMeasured Health: 82\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHealth: 61",
    b"HTTP/1.1 503 Service Unavailable\r\nX-Health: 0\r\nContent-Length: 10\r\n\r\nHealth: 0\n",
    b"HTTP/1.1 200 OK\r\nX-Health-Forced: up\r\nX-Health: 100\r\n\r\nHealth: 100\nForced Reason: maintenance\n",
    b"HTTP/1.0 200 OK\nServer: x\n\nHealth: 3\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nHeal\r\n6\r\nth: 42\r\n0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Health: 87.5\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 302 Found\r\nLocation: /app/status\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nNOT FOUND",
    b"HTTP/1.1 200 OK\r\nX-Health: -5\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    # A TLS alert (handshake failure) and a ServerHello start, as a TLS server on the port sends.
    b"\x15\x03\x01\x00\x02\x02\x28",
    b"\x16\x03\x03\x00\x5a\x02\x00\x00\x56\x03\x03" + bytes(range(32)),
    b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(40)) + b"X-Health: 5\r\n\r\n",
]
for i, answer in enumerate(ANSWERS):
    for mode, chunk, limits in [(0, 0, 0), (1, 1, 0), (2, 7, 3), (0, 3, 200)]:
        write("litmus", bytes([mode, chunk, limits]) + answer)

# ---- IPVS: [0] + datagram of netlink messages -----------------------------------------------
FLAGS = {"NLM_F_REQUEST": 1, "NLM_F_MULTI": 2, "NLM_F_ACK": 4, "NLM_F_ECHO": 8,
         "NLM_F_DUMP_INTR": 0x10, "NLM_F_DUMP": 0x300, "NLM_F_CAPPED": 0x100,
         "NLM_F_ACK_TLVS": 0x200, "0": 0}
TYPES = {"NLMSG_ERROR": 2, "NLMSG_DONE": 3}
MSG = re.compile(r'\{nlmsg_len=(\d+), nlmsg_type=(0x[0-9a-f]+|NLMSG_\w+)[^,]*, nlmsg_flags=([\w|]+), '
                 r'nlmsg_seq=(\d+), nlmsg_pid=(-?\d+)\}, (?:"((?:\\x[0-9a-f]{2})*)"|(\d+)|\{error=(-?\d+))')


def nlmsg(mtype, flags, seq, pid, payload):
    return struct.pack("=IHHIi", 16 + len(payload), mtype, flags, seq, pid) + payload + b"\0" * (-len(payload) % 4)


for line in IPVS_CAPTURE.read_text().splitlines():
    if not line.startswith("recvmsg") and not line.startswith("sendmsg"):
        continue
    dgram = b""
    for m in MSG.finditer(line):
        _, mtype, flags, seq, pid, hexes, done, err = m.groups()
        mtype = TYPES.get(mtype) or int(mtype, 16)
        flags = sum(FLAGS[f] if f in FLAGS else int(f, 16) for f in flags.split("|"))
        if hexes is not None:
            payload = bytes(int(h, 16) for h in hexes.split("\\x")[1:])
        elif done is not None:
            payload = struct.pack("=i", int(done))
        else:
            payload = struct.pack("=i", int(err)) + struct.pack("=IHHIi", 20, 0x1c, 5, int(seq), int(pid))
        dgram += nlmsg(mtype, flags, int(seq) & 0xffffffff, int(pid), payload)
    if dgram:
        write("ipvs_netlink", b"\0" + dgram)

# ---- nf_tables: the run of messages, one seed per message and one for the whole batch ------
raw = (ROOT / "tests/data/nft_sendmsg_raw.txt").read_text()
NFT = re.compile(r'\{nlmsg_len=(\d+), nlmsg_type=([^,]+), nlmsg_flags=([\w|]+), nlmsg_seq=(\d+), '
                 r'nlmsg_pid=(\d+)\}, \{nfgen_family=(\w+), version=NFNETLINK_V0, res_id=htons\((\d+)\)\},? ?'
                 r'((?:\[\[?\{nla_len=\d+, nla_type=[\w|]+\}, "(?:\\x[0-9a-f]{2})*"\]?,? ?)*)')
NLA = re.compile(r'\{nla_len=(\d+), nla_type=([\w|]+)\}, "((?:\\x[0-9a-f]{2})*)"')
NFT_TYPES = {"NFNL_MSG_BATCH_BEGIN": 0x10, "NFNL_MSG_BATCH_END": 0x11}
NFT_MSGS = {"NFT_MSG_NEWTABLE": 0, "NFT_MSG_DELTABLE": 2, "NFT_MSG_NEWCHAIN": 3, "NFT_MSG_NEWRULE": 6}
FAMILIES = {"AF_UNSPEC": 0, "AF_INET": 2, "AF_INET6": 10}


def nft_messages(table):
    """The batch's messages, with table `bb` renamed to `table`."""
    out = []
    for m in NFT.finditer(raw):
        _, mtype, flags, seq, pid, fam, res, attrs = m.groups()
        if mtype in NFT_TYPES:
            t = NFT_TYPES[mtype]
        else:
            t = (10 << 8) | NFT_MSGS[mtype.split("|")[1]]
        f = sum(FLAGS.get(x, {"NLM_F_CREATE": 0x400, "NLM_F_APPEND": 0x800}.get(x, 0))
                for x in flags.split("|"))
        payload = struct.pack("=BB", FAMILIES[fam], 0) + struct.pack(">H", int(res))
        for a in NLA.finditer(attrs):
            _, atype, hexes = a.groups()
            at = 0
            for part in atype.split("|"):
                at |= 0x8000 if part == "NLA_F_NESTED" else int(part, 16)
            value = bytes(int(h, 16) for h in hexes.split("\\x")[1:])
            if value == b"bb\0":
                value = table.encode() + b"\0"
            payload += struct.pack("=HH", 4 + len(value), at) + value + b"\0" * (-len(value) % 4)
        out.append(nlmsg(t, f, int(seq), int(pid), payload))
    return out


for table in ["bb", "bigbro"]:
    msgs = nft_messages(table)
    for msg in msgs:
        write("nft_netlink", msg)
    write("nft_netlink", b"".join(msgs))
# ---- ipvsadm arguments: [0] + NUL-separated words, or [1] + the input of -R -----------------
IPVSADM = [
    "-A -f 7 -s wlc", "-a -f 7 -r 10.0.0.1 -i -w 100", "-e -f 7 -r 10.0.0.1 -i -w 0", "-d -f 7 -r 10.0.0.1",
    "-D -f 7", "-C", "-L -n", "-L -n --stats", "-L -n --rate", "-L -n --exact --stats", "-L -n --thresholds",
    "-L -n --persistent-conn", "-L -n -c", "-S -n", "-Ln --json", "-l --sort", "-Z -f 7",
    "--set 900 120 300", "--start-daemon master --mcast-interface eth0 --syncid 7", "--stop-daemon master",
    "-A -t 192.0.2.1:80 -s rr -p 300 -M 255.255.255.0", "-a -t 192.0.2.1:80 -r 10.0.0.3:8080 -m -w 5 -x 10 -y 2",
    "-A -u [2001:db8::1]:53 -s sh -b sh-fallback,sh-port", "-a -f 7 -r 10.0.0.4 -i --tun-type gue --tun-port 6080 --tun-nocsum",
    "-A -f 8 -s mh -b flag-1 --pe sip", "-E -f 7 -s rr", "-L -t 192.0.2.1:80", "-h", "--version", "-A", "-a -f 7",
]
for line in IPVSADM:
    write("ipvsadm_args", b"\0" + line.replace(" ", "\0").encode())
write("ipvsadm_args", b"\1-A -f 7 -s wlc\n-a -f 7 -r 10.0.0.1:0 -i -w 100\n-a -f 7 -r 10.0.0.2:0 -i -w 0\n-A -t 192.0.2.1:80 -s rr\n")
write("ipvsadm_args", b"\1ipvsadm -A -f 9 -s rr\n\n# note\n-Z\n")
print("seeds:", {d.name: len(list(d.iterdir())) for d in SEEDS.iterdir()})
