# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Work out what a netconsole target leaves out: the interface, the source address and the next hop's MAC.

The kernel's routing table says it (``ip -j route get <collector>``): the interface (``dev``), the source address
(``prefsrc``) and the gateway when the collector is on another subnet. The Ethernet frame goes to the next hop: the
gateway, or the collector itself when it is on the same subnet. Its MAC comes from the neighbour table (``ip -j
neigh show to <next hop> dev <dev>``); when the table does not have it, one empty UDP datagram to the next hop's
discard port (9) makes the kernel resolve it (ARP, IPv6 neighbour discovery), and the table is read again.
"""

from __future__ import annotations

import json
import socket
import time

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._netconsole import target as nc_target

_USABLE = {"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"}


class DetectError(RuntimeError):
    """What could not be found, and what to give instead."""


def _ip(module, *args):
    ip = module.get_bin_path("ip", required=False)
    if not ip:
        raise DetectError("the ip command (iproute2) is needed to find the interface, source address and MAC: "
                          "install iproute2 or give dev_name, local_ip and remote_mac")
    rc, out, err = module.run_command([ip, "-j"] + list(args), environ_update={"LC_ALL": "C"})
    if rc != 0:
        raise DetectError("ip %s failed (rc %s): %s" % (" ".join(args), rc, (err or out).strip()))
    try:
        return json.loads(out or "[]")
    except ValueError:
        raise DetectError("ip %s printed no JSON (iproute2 too old for -j?): %s" % (" ".join(args), out[:200]))


def route(module, remote_ip):
    """``{"dev", "prefsrc", "gateway"}`` of the route to ``remote_ip``."""
    routes = _ip(module, "route", "get", remote_ip)
    if not routes:
        raise DetectError("no route to the collector %s: give dev_name, local_ip and remote_mac" % remote_ip)
    r = routes[0]
    if r.get("type") in ("local", "unreachable", "prohibit", "blackhole") or r.get("dev") == "lo":
        raise DetectError("the collector %s is %s from this host: netconsole needs a collector reached through a "
                          "network interface" % (remote_ip, "this host itself" if r.get("dev") == "lo"
                                                 else r.get("type")))
    return {"dev": r.get("dev"), "prefsrc": r.get("prefsrc"), "gateway": r.get("gateway")}


def _neighbour(module, address, dev):
    for entry in _ip(module, "neigh", "show", "to", address, "dev", dev):
        states = set(entry.get("state") or [])
        if entry.get("lladdr") and states & _USABLE:
            return entry["lladdr"].lower()
    return None


def next_hop_mac(module, next_hop, dev, probe=True, wait=3.0, sleep=time.sleep):
    """The MAC of ``next_hop`` on ``dev``, resolved by one probe datagram when the table does not have it."""
    mac = _neighbour(module, next_hop, dev)
    if mac or not probe:
        return mac
    family = socket.AF_INET6 if ":" in next_hop else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"", (next_hop, 9))
    except OSError:
        pass  # the neighbour table says whether resolution worked
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        sleep(0.2)
        mac = _neighbour(module, next_hop, dev)
        if mac:
            return mac
    return None


def complete(module, target, probe=True):
    """Fill in ``dev_name``, ``local_ip`` and ``remote_mac``; returns ``(target, found)`` with ``found`` what was
    detected (including ``next_hop``)."""
    target = dict(target)
    found = {}
    if target["dev_name"] and target["local_ip"] and target["remote_mac"]:
        return target, found
    r = route(module, target["remote_ip"])
    if not target["dev_name"]:
        target["dev_name"] = nc_target.check_ifname(r["dev"])
        found["dev_name"] = target["dev_name"]
    if not target["local_ip"]:
        if not r["prefsrc"]:
            raise DetectError("the route to %s names no source address: give local_ip" % target["remote_ip"])
        target["local_ip"] = nc_target.check_ip(r["prefsrc"], "local_ip")
        found["local_ip"] = target["local_ip"]
    if not target["remote_mac"]:
        hop = r["gateway"] or target["remote_ip"]
        found["next_hop"] = hop
        mac = next_hop_mac(module, hop, target["dev_name"], probe=probe)
        if not mac:
            raise DetectError("the MAC of %s (%s, on %s) is not known and did not resolve: give remote_mac"
                              % (hop, "the gateway to %s" % target["remote_ip"] if r["gateway"] else "the collector",
                                 target["dev_name"]))
        target["remote_mac"] = nc_target.check_mac(mac)
        found["remote_mac"] = target["remote_mac"]
    return target, found
