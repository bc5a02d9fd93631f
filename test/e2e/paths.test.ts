/**
 * End to end in rule mode, with a real WireGuard tunnel (wireguard-go) and real
 * connections: which way does each kind of traffic go after `wgsplit up` with the example
 * profile, does a UDP profile keep the tunnel's own UDP out of the tunnel, and does `down`
 * restore the host namespace exactly. The profile leaves `mode` at its default ("auto"),
 * which on this kernel must pick rule mode. The scenarios are shared with fwmark mode
 * (paths-fwmark.test.ts): test/helpers/pathScenarios.ts. Needs root.
 */
import { definePathTests } from '../helpers/pathScenarios.js';

// Own prefix and WireGuard interface name: wireguard-go's control sockets are machine-wide
// and ava runs test files in parallel.
definePathTests({ mode: 'rule', prefix: 'wgep', wg: 'wgep0', modeLine: '' });
