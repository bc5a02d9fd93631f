/**
 * Gateway mode end to end with mode = "fwmark": the same scenarios as rule mode
 * (test/helpers/gatewayScenarios.ts); here the mark rules also test the include/exclude
 * sets and table T holds only the way out plus throws for the connected networks (for the
 * strict reverse-path check with src_valid_mark = 1). Needs root.
 */
import { defineGatewayTests } from '../helpers/gatewayScenarios.js';

defineGatewayTests({ mode: 'fwmark', prefix: 'h10b', wg: 'h10b0', modeLine: 'mode = "fwmark"' });
