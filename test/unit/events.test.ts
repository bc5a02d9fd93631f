/**
 * classify(): which `ip -o monitor` lines make the watcher reconcile.
 */
import test from 'ava';
import { classify } from '../../src/kernel/events.js';

const none = new Set<number>();

test('a connected IPv4 network in main (scope link) is relevant', (t) => {
  const e = classify('[ROUTE]44.0.0.0/24 dev br-pub proto kernel scope link src 44.0.0.1 ', none);
  t.true(e.relevant);
  t.is(e.summary, 'connected network 44.0.0.0/24 added/changed');
});

// IPv6 routes carry no scope, so `scope link` never shows: a docker bridge with a pinned
// public IPv6 subnet must still make the watcher add its throw.
test('a connected IPv6 network in main (no scope printed) is relevant', (t) => {
  const e = classify('[ROUTE]2a00:44::/64 dev br-pub proto kernel metric 256 pref medium', none);
  t.true(e.relevant);
  t.is(e.summary, 'connected network 2a00:44::/64 added/changed');
  t.true(classify('[ROUTE]Deleted 2a00:44::/64 dev br-pub proto kernel metric 256 pref medium', none).relevant);
});

test('IPv6 link-local, gateway routes and other tables are not', (t) => {
  t.false(classify('[ROUTE]fe80::/64 dev br-pub proto kernel metric 256 pref medium', none).relevant);
  t.false(classify('[ROUTE]2a00:9::/64 via 2a00:2::1 dev eth0 proto kernel metric 256 pref medium', none).relevant);
  t.false(classify('[ROUTE]2a00:44::/64 dev br-pub table 999 proto kernel metric 256 pref medium', none).relevant);
  t.false(classify('[ROUTE]blackhole 198.18.0.1 table 999 ', none).relevant);
});
