/**
 * Is our nftables table there, and which content hash does its comment carry? Asked with
 * one NFT_MSG_GETTABLE over NETLINK_NETFILTER instead of `nft -t list table`: nft (1.0.6)
 * loads every set element into its cache even to print one table's header, 1.6 s at 100k
 * prefixes, and the comment is all a no-op re-apply needs. The comment is stored as
 * NFTA_TABLE_USERDATA (a TLV list nft writes; we only look for our "wgsplit <hash>" text).
 */
import netlink from 'netlink';
import { NFT_TABLE } from '../model/constants.js';

const { RawNetlinkSocket } = netlink;
const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWTABLE = 0;
const NFT_MSG_GETTABLE = 1;
const NFPROTO_INET = 1;
const NFTA_TABLE_NAME = 1;
const NFTA_TABLE_USERDATA = 6;
const NLMSG_ERROR = 2;

export function readNftTableComment(timeoutMs = 2000): Promise<{ present: boolean; hash?: string } | undefined> {
  return new Promise((resolve) => {
    let sock: InstanceType<typeof RawNetlinkSocket>;
    try {
      sock = new RawNetlinkSocket(NETLINK_NETFILTER, {} as never);
    } catch {
      resolve(undefined); // no nfnetlink here: the caller falls back to nft(8)
      return;
    }
    let result: { present: boolean; hash?: string } | undefined;
    const done = (r: { present: boolean; hash?: string } | undefined) => {
      clearTimeout(timer);
      try {
        sock.close();
      } catch {
        /* closed */
      }
      resolve(r);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    sock.on('message', (buf: Buffer) => {
      let off = 0;
      while (off + 16 <= buf.length) {
        const len = buf.readUInt32LE(off);
        if (len < 16 || off + len > buf.length) break;
        const type = buf.readUInt16LE(off + 4);
        if (type === NLMSG_ERROR) {
          const errno = -buf.readInt32LE(off + 16);
          if (errno === 2) return done({ present: false }); // ENOENT: no such table
          if (errno !== 0) return done(undefined); // EPERM and the like: let nft(8) say it
          return done(result ?? { present: false });
        }
        if (type === ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE)) {
          result = { present: true };
          let a = off + 16 + 4; // nlmsghdr + nfgenmsg
          while (a + 4 <= off + len) {
            const alen = buf.readUInt16LE(a);
            const atype = buf.readUInt16LE(a + 2) & 0x3fff;
            if (alen < 4) break;
            if (atype === NFTA_TABLE_USERDATA) {
              const m = /wgsplit ([0-9a-f]+)/.exec(buf.subarray(a + 4, a + alen).toString('latin1'));
              if (m) result.hash = m[1];
            }
            a += (alen + 3) & ~3;
          }
        }
        off += (len + 3) & ~3;
      }
    });
    const name = Buffer.from(NFT_TABLE + '\0');
    const attrLen = 4 + name.length;
    const size = 16 + 4 + ((attrLen + 3) & ~3);
    const msg = Buffer.alloc(size);
    msg.writeUInt32LE(size, 0);
    msg.writeUInt16LE((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, 4);
    msg.writeUInt16LE(0x1 | 0x4, 6); // NLM_F_REQUEST | NLM_F_ACK
    msg.writeUInt32LE(1, 8);
    msg[16] = NFPROTO_INET;
    msg[17] = 0; // NFNETLINK_V0
    msg.writeUInt16LE(attrLen, 20);
    msg.writeUInt16LE(NFTA_TABLE_NAME, 22);
    name.copy(msg, 24);
    sock.send(msg, {}, (err?: Error) => err && done(undefined));
  });
}
