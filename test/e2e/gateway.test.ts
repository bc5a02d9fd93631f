/**
 * Gateway mode end to end in rule mode (the default, mode = "auto" on this kernel): LAN
 * clients and a container through the tunnel with real packets, next to a host profile.
 * The scenarios: test/helpers/gatewayScenarios.ts. Needs root.
 */
import { defineGatewayTests } from '../helpers/gatewayScenarios.js';

// Own prefix and WireGuard interface name (wireguard-go's control sockets are machine-wide).
defineGatewayTests({ mode: 'rule', prefix: 'h10a', wg: 'h10a0', modeLine: '' });
