# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""netconsole targets: checked, completed and written out the two ways the kernel takes them.

A target (Documentation/networking/netconsole.rst) sends from ``local_ip:local_port`` on ``dev_name`` to
``remote_ip:remote_port``, as an Ethernet frame to ``remote_mac`` (the collector's MAC on the same subnet, the
gateway's otherwise). The kernel takes targets either from configfs (``/sys/kernel/config/netconsole/<name>/``, one
directory per target, CONFIG_NETCONSOLE_DYNAMIC) or from the module parameter
``netconsole=[+]src-port@src-ip/dev,tgt-port@tgt-ip/tgt-mac`` (several separated by ``;``).

Everything written to a boot file or to configfs comes from here, checked: names, addresses, ports and MACs that
do not parse are an error that says what is allowed, never text passed on.
"""

from __future__ import annotations

import ipaddress
import re

DEFAULT_LOCAL_PORT = 6665
DEFAULT_REMOTE_PORT = 6666

# configfs attributes in the order they are written (``enabled`` last, after all others, while disabled).
ATTRIBUTES = ("dev_name", "local_ip", "remote_ip", "remote_mac", "local_port", "remote_port", "extended")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$")


class TargetError(ValueError):
    """A target that cannot be used; the message names the field, the value and what is allowed."""


def check_name(name):
    if not isinstance(name, str) or not _NAME.match(name):
        raise TargetError("target name %r: use 1-64 letters, digits, '_', '.', '-', starting with a letter or digit "
                          "(it becomes a directory under /sys/kernel/config/netconsole)" % (name,))
    return name


def check_ip(value, field):
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise TargetError("%s %r is not an IPv4 or IPv6 address" % (field, value))


def check_port(value, field):
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if not 1 <= port <= 65535:
        raise TargetError("%s %r: a UDP port is a whole number from 1 to 65535" % (field, value))
    return port


def check_mac(value, field="remote_mac"):
    if not isinstance(value, str) or not _MAC.match(value.strip()):
        raise TargetError("%s %r: an Ethernet address is six hex pairs separated by ':' (52:54:00:12:34:56)"
                          % (field, value))
    mac = value.strip().lower()
    if mac == "00:00:00:00:00:00":
        raise TargetError("%s is 00:00:00:00:00:00: give the collector's (or its gateway's) MAC, or leave it out "
                          "to have it found" % field)
    return mac


def check_ifname(value):
    if not isinstance(value, str) or not _IFNAME.match(value) or value in (".", ".."):
        raise TargetError("dev_name %r: a network interface name, 1-15 characters" % (value,))
    if value == "lo":
        raise TargetError("dev_name is lo: netconsole sends through a real network interface, not loopback")
    return value


def normalise(target, index=0, prefix="fleet-"):
    """A target dict from the user -> the checked dict with defaults; detected fields stay None."""
    if not isinstance(target, dict):
        raise TargetError("each target is a dict with at least remote_ip (got %r)" % (target,))
    if not target.get("remote_ip"):
        raise TargetError("target %d has no remote_ip: the collector's address is required" % (index + 1))
    out = {
        "name": check_name(target.get("name") or "%s%d" % (prefix, index + 1)),
        "remote_ip": check_ip(target["remote_ip"], "remote_ip"),
        "remote_port": check_port(target.get("remote_port") or DEFAULT_REMOTE_PORT, "remote_port"),
        "local_port": check_port(target.get("local_port") or DEFAULT_LOCAL_PORT, "local_port"),
        "local_ip": check_ip(target["local_ip"], "local_ip") if target.get("local_ip") else None,
        "dev_name": check_ifname(target["dev_name"]) if target.get("dev_name") else None,
        "remote_mac": check_mac(target["remote_mac"]) if target.get("remote_mac") else None,
        "extended": bool(target.get("extended", True)),
    }
    if not out["name"].startswith(prefix):
        raise TargetError("target name %r must start with %r: targets with other names are not managed here "
                          "(see the prefix option)" % (out["name"], prefix))
    if out["local_ip"] and ipaddress.ip_address(out["local_ip"]).version != \
            ipaddress.ip_address(out["remote_ip"]).version:
        raise TargetError("target %s: local_ip %s and remote_ip %s are not the same IP version"
                          % (out["name"], out["local_ip"], out["remote_ip"]))
    return out


def check_unique(targets):
    names = [t["name"] for t in targets]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TargetError("target names must differ; given more than once: %s" % ", ".join(twice))


def modparam(targets):
    """The ``netconsole=`` module parameter for complete targets."""
    parts = []
    for t in targets:
        local_ip = ("[%s]" % t["local_ip"]) if ":" in t["local_ip"] else t["local_ip"]
        remote_ip = ("[%s]" % t["remote_ip"]) if ":" in t["remote_ip"] else t["remote_ip"]
        parts.append("%s%d@%s/%s,%d@%s/%s" % ("+" if t["extended"] else "", t["local_port"], local_ip,
                                              t["dev_name"], t["remote_port"], remote_ip, t["remote_mac"]))
    return ";".join(parts)


def attributes(target):
    """The configfs attribute values of a complete target, as the kernel reads them back."""
    return {
        "dev_name": target["dev_name"],
        "local_ip": target["local_ip"],
        "remote_ip": target["remote_ip"],
        "remote_mac": target["remote_mac"],
        "local_port": str(target["local_port"]),
        "remote_port": str(target["remote_port"]),
        "extended": "1" if target["extended"] else "0",
    }


def boot_file(target):
    """The ``key=value`` lines the boot unit's script writes into configfs (roles/netconsole)."""
    values = attributes(target)
    return "".join("%s=%s\n" % (key, values[key]) for key in ATTRIBUTES)


def device_unit(dev_name):
    """systemd's device unit for a network interface (``sys-subsystem-net-devices-<escaped>.device``)."""
    escaped = "".join(c if (c.isalnum() and c.isascii()) or c in ":_" or (c == "." and i) else "\\x%02x" % ord(c)
                      for i, c in enumerate(dev_name))
    return "sys-subsystem-net-devices-%s.device" % escaped
