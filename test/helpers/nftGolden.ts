/**
 * The golden nft script of one fwmark profile (tcp+udp, ports, uids, includes and
 * excludes) on the sandbox host's wg0: test/unit/fwmark.test.ts compares compile's output
 * with it, test/e2e/probe.test.ts feeds it to the real nft in a fresh namespace.
 */
// counters = false: the golden is fwmark mode's own objects (test/unit/counters.test.ts has the counters').
export const WEB_TOML = `counters = false
interface = "wg0"
table = 200
priority = 10200
mode = "fwmark"
protocols = ["tcp", "udp"]
dports = [80, 443, "8000-8999"]
uids = [1000, "2000-2999"]
include = ["0.0.0.0/1", "128.0.0.0/1", "2000::/3"]
exclude = ["10.0.0.0/8", "198.51.100.0/24", "198.51.100.7/32", "2001:db8::/32"]
`;

// Checked by hand: includes aggregated (two /1 -> 0.0.0.0/0), an exclude inside another
// dropped, the WireGuard endpoint excluded because UDP is selected, one mark rule and one
// masquerade rule per family, only original-direction packets not yet marked by another
// profile. test/e2e/probe.test.ts feeds the same script to the real nft.
export const GOLDEN_WEB_DUMP = `chain output type route hook output priority -150; policy accept;
chain postrouting type nat hook postrouting priority 100; policy accept;
set web_v4_exclude type ipv4_addr; flags interval;
  element 10.0.0.0/8
  element 20.0.2.1/32
  element 198.51.100.0/24
set web_v4_include type ipv4_addr; flags interval;
  element 0.0.0.0/0
set web_v6_exclude type ipv6_addr; flags interval;
  element 2001:db8::/32
set web_v6_include type ipv6_addr; flags interval;
  element 2000::/3
rule output [web/v4/mark] meta nfproto ipv4 meta mark & 0x0f000000 == 0 ct direction original meta l4proto { tcp, udp } th dport { 80, 443, 8000-8999 } meta skuid { 1000, 2000-2999 } ip daddr @web_v4_include ip daddr != @web_v4_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000
rule output [web/v6/mark] meta nfproto ipv6 meta mark & 0x0f000000 == 0 ct direction original meta l4proto { tcp, udp } th dport { 80, 443, 8000-8999 } meta skuid { 1000, 2000-2999 } ip6 daddr @web_v6_include ip6 daddr != @web_v6_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000
rule postrouting [web/v4/masquerade] meta nfproto ipv4 oifname "wg0" meta mark & 0x0f000000 == 0x01000000 masquerade
rule postrouting [web/v6/masquerade] meta nfproto ipv6 oifname "wg0" meta mark & 0x0f000000 == 0x01000000 masquerade
`;

export const GOLDEN_WEB_SCRIPT = `table inet wgsplit {
	set web_v4_include {
		type ipv4_addr; flags interval;
		elements = {
			0.0.0.0/0
		}
	}
	set web_v4_exclude {
		type ipv4_addr; flags interval;
		elements = {
			10.0.0.0/8,
			20.0.2.1/32,
			198.51.100.0/24
		}
	}
	set web_v6_include {
		type ipv6_addr; flags interval;
		elements = {
			2000::/3
		}
	}
	set web_v6_exclude {
		type ipv6_addr; flags interval;
		elements = {
			2001:db8::/32
		}
	}
	chain output {
		type route hook output priority -150; policy accept;
		meta nfproto ipv4 meta mark & 0x0f000000 == 0 ct direction original meta l4proto { tcp, udp } th dport { 80, 443, 8000-8999 } meta skuid { 1000, 2000-2999 } ip daddr @web_v4_include ip daddr != @web_v4_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000 comment "web/v4/mark #f72bea5d01"
		meta nfproto ipv6 meta mark & 0x0f000000 == 0 ct direction original meta l4proto { tcp, udp } th dport { 80, 443, 8000-8999 } meta skuid { 1000, 2000-2999 } ip6 daddr @web_v6_include ip6 daddr != @web_v6_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000 comment "web/v6/mark #b9d8f1e932"
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		meta nfproto ipv4 oifname "wg0" meta mark & 0x0f000000 == 0x01000000 masquerade comment "web/v4/masquerade #a58c583173"
		meta nfproto ipv6 oifname "wg0" meta mark & 0x0f000000 == 0x01000000 masquerade comment "web/v6/masquerade #df4e2ccd5d"
	}
}
`;
