#!/usr/bin/env python3
"""Sandbox transparent proxy stand-in: a TPROXY listener that reports what it saw.

    python3 tproxy.py tcp|udp ADDR PORT [tcp|udp ADDR PORT ...]

Every listener has IP_TRANSPARENT (IPV6_TRANSPARENT), so nft's `tproxy ... to ADDR:PORT`
can hand it connections and datagrams addressed to anywhere. It answers each TCP connection
and each UDP datagram with one line

    proxy DST PORT SRC

DST PORT: the original destination the client asked for (TCP: the accepted socket's own
address, which TPROXY leaves as the original destination; UDP: the IP_ORIGDSTADDR control
message), SRC: the client's address as seen here. UDP answers are sent from a transparent
socket bound to the original destination, as a real proxy does, so the client's connected
UDP socket accepts them. Prints "ready" once every listener is bound. Node cannot set
IP_TRANSPARENT; python3 can (socket.setsockopt(SOL_IP, IP_TRANSPARENT=19, 1)). Needs
CAP_NET_ADMIN (root) for IP_TRANSPARENT.
"""
import ipaddress
import select
import socket
import struct
import sys

SOL_IP, SOL_IPV6 = 0, 41
IP_TRANSPARENT, IPV6_TRANSPARENT = 19, 75
IP_RECVORIGDSTADDR, IPV6_RECVORIGDSTADDR = 20, 74  # IP_ORIGDSTADDR / IPV6_ORIGDSTADDR cmsg types


def seen(addr):
    return addr[7:] if addr.lower().startswith('::ffff:') else addr


def transparent(s, v6):
    if v6:
        s.setsockopt(SOL_IPV6, IPV6_TRANSPARENT, 1)
    else:
        s.setsockopt(SOL_IP, IP_TRANSPARENT, 1)


def listen(proto, addr, port):
    v6 = ':' in addr
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    transparent(s, v6)
    if proto == 'udp':
        s.setsockopt(SOL_IPV6 if v6 else SOL_IP, IPV6_RECVORIGDSTADDR if v6 else IP_RECVORIGDSTADDR, 1)
    s.bind((addr, port))
    if proto == 'tcp':
        s.listen(64)
    return s, proto, v6


def orig_dst(ancdata, v6):
    for level, typ, data in ancdata:
        if v6 and level == SOL_IPV6 and typ == IPV6_RECVORIGDSTADDR:
            # struct sockaddr_in6: family(2) port(2, BE) flowinfo(4) addr(16) scope(4)
            port = struct.unpack('!H', data[2:4])[0]
            return str(ipaddress.IPv6Address(data[8:24])), port
        if not v6 and level == SOL_IP and typ == IP_RECVORIGDSTADDR:
            port = struct.unpack('!H', data[2:4])[0]
            return str(ipaddress.IPv4Address(data[4:8])), port
    return None, None


def serve_udp(s, v6):
    data, anc, _flags, peer = s.recvmsg(2048, 256)
    dst, port = orig_dst(anc, v6)
    line = f'proxy {dst} {port} {seen(peer[0])}\n'.encode()
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    r = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        transparent(r, v6)
        r.bind((dst, port))
        r.sendto(line, peer)
    except OSError as e:
        sys.stderr.write(f'tproxy: udp answer from {dst}:{port}: {e}\n')
    finally:
        r.close()


def main(argv):
    if not argv or len(argv) % 3:
        sys.stderr.write(__doc__)
        return 2
    socks = {}
    for i in range(0, len(argv), 3):
        proto, addr, port = argv[i], argv[i + 1], int(argv[i + 2])
        s, proto, v6 = listen(proto, addr, port)
        socks[s.fileno()] = (s, proto, v6)
    sys.stdout.write('ready\n')
    sys.stdout.flush()
    while True:
        ready, _, _ = select.select(list(socks), [], [])
        for fd in ready:
            s, proto, v6 = socks[fd]
            try:
                if proto == 'tcp':
                    c, peer = s.accept()
                    dst, port = c.getsockname()[:2]
                    c.sendall(f'proxy {seen(dst)} {port} {seen(peer[0])}\n'.encode())
                    c.close()
                else:
                    serve_udp(s, v6)
            except OSError as e:
                sys.stderr.write(f'tproxy: {proto}: {e}\n')


if __name__ == '__main__':
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(0)
