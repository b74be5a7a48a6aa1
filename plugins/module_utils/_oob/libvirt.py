# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Method ``libvirt``: a libvirt domain, through the libvirt Python binding (package ``libvirt-python``).

``virDomainSendKey`` presses Alt+SysRq+key on the domain's keyboard with Linux input keycodes (the ``linux``
codeset, what ``virsh send-key --codeset linux KEY_LEFTALT KEY_SYSRQ KEY_W`` sends); with QEMU/KVM domains it lands
on the emulated PS/2 keyboard, so the guest needs its ``i8042`` and ``atkbd`` drivers. ``virDomainInjectNMI`` raises
an NMI on the domain's vCPUs. Both need a read-write connection (``qemu:///system`` as root or a member of the
``libvirt`` group; ``qemu+ssh://root@hypervisor/system`` from elsewhere).
"""

from __future__ import annotations

import re

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob

try:
    import libvirt
except ImportError:  # pragma: no cover - depends on the controller
    libvirt = None

ARGUMENT_SPEC = {
    "libvirt": dict(type="dict", options=dict(
        uri=dict(type="str", default="qemu:///system"),
        domain=dict(type="str", required=True),
    )),
}

# virDomainState, by number (include/libvirt/libvirt-domain.h).
STATES = {0: "nostate", 1: "running", 2: "blocked", 3: "paused", 4: "shutdown", 5: "shutoff", 6: "crashed",
          7: "pmsuspended"}
# States in which the guest's kernel runs and can act on a key or an NMI (blocked: running, waiting on a resource).
RUNNING = ("running", "blocked")
# virKeycodeSet VIR_KEYCODE_SET_LINUX; the binding's constant when it has one.
KEYCODE_SET_LINUX = 0

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def _binding():
    if libvirt is None:
        raise oob.OobError("method libvirt needs the libvirt Python binding on the host that runs this task: install "
                           "the libvirt-python package (pip install libvirt-python, which builds against libvirt's "
                           "development files; or the distribution's python3-libvirt)")
    # libvirt prints every error on stderr by default; the errors come back as exceptions here.
    libvirt.registerErrorHandler(lambda context, error: None, None)
    return libvirt


def _error_text(exc):
    message = exc.get_error_message() if hasattr(exc, "get_error_message") else None
    return message or str(exc)


def connect(target):
    """A read-write connection to ``target['uri']``; OobError with libvirt's own text when it fails."""
    binding = _binding()
    uri = (target or {}).get("uri") or "qemu:///system"
    try:
        conn = binding.open(uri)
    except binding.libvirtError as exc:
        raise oob.OobError("cannot connect to libvirt at %s: %s; check that libvirtd (or virtqemud) runs there and "
                           "that this task's user may open a read-write connection (root, or the libvirt group)"
                           % (uri, _error_text(exc)))
    if conn is None:  # pragma: no cover - old bindings returned None
        raise oob.OobError("cannot connect to libvirt at %s" % uri)
    return conn


def lookup(conn, target):
    """The domain named (or with the UUID) ``target['domain']``."""
    binding = _binding()
    name = str(target["domain"])
    errors = []
    lookups = [conn.lookupByName]
    if _UUID.match(name):
        lookups.insert(0, conn.lookupByUUIDString)
    for find in lookups:
        try:
            return find(name)
        except binding.libvirtError as exc:
            errors.append(_error_text(exc))
    try:
        known = sorted(d.name() for d in conn.listAllDomains(0))
    except binding.libvirtError:  # pragma: no cover - listing is allowed wherever lookups are
        known = []
    raise oob.OobError("libvirt at %s has no domain %r (%s); domains there: %s"
                       % (conn.getURI(), name, errors[-1], ", ".join(known) or "none"))


def _require_running(domain, uri, what):
    try:
        state, reason = domain.state()
    except libvirt.libvirtError as exc:
        raise oob.OobError("cannot read the state of domain %s on %s: %s" % (domain.name(), uri, _error_text(exc)))
    name = STATES.get(state, "state %s" % state)
    if name not in RUNNING:
        advice = {"paused": "resume it (virsh resume %s)" % domain.name(),
                  "pmsuspended": "wake it (virsh dompmwakeup %s)" % domain.name()}.get(
            name, "start it, or look at why it stopped")
        raise oob.OobError("domain %s on %s is %s, not running: its kernel cannot act on %s; %s"
                           % (domain.name(), uri, name, what, advice))
    return name


class _Session:
    """Connection + domain for one call; closes the connection."""

    def __init__(self, target):
        oob.require(target, "libvirt", "domain")
        self.conn = connect(target)
        try:
            self.uri = self.conn.getURI()
            self.domain = lookup(self.conn, target)
        except Exception:
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # pragma: no cover - closing a broken connection
                pass
            self.conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _codeset():
    return getattr(libvirt, "VIR_KEYCODE_SET_LINUX", KEYCODE_SET_LINUX)


def send_sysrq(module, target, keys, hold_time_ms=100):
    """Press Alt+SysRq+key for each key, in order, through ``virDomainSendKey`` (Linux keycodes)."""
    for key in keys:
        if key not in oob.LINUX_KEYCODES:
            raise oob.OobError("SysRq key %r has no keyboard keycode; keyboard keys: %s"
                               % (key, " ".join(sorted(oob.LINUX_KEYCODES))))
    sent = []
    with _Session(target) as session:
        _require_running(session.domain, session.uri, "a key")
        for key in keys:
            codes = oob.linux_chord(key)
            try:
                session.domain.sendKey(_codeset(), int(hold_time_ms), codes, len(codes), 0)
            except libvirt.libvirtError as exc:
                raise oob.OobError("virDomainSendKey (Alt+SysRq+%s) to domain %s on %s failed: %s"
                                   % (key, session.domain.name(), session.uri, _error_text(exc)))
            sent.append({"key": key, "request": {
                "call": "virDomainSendKey", "uri": session.uri, "domain": session.domain.name(),
                "codeset": "linux", "keycodes": codes, "keys": oob.linux_chord_names(key),
                "holdtime": int(hold_time_ms)}})
    return sent


def inject_nmi(module, target):
    """Raise an NMI on the domain's vCPUs through ``virDomainInjectNMI``."""
    with _Session(target) as session:
        state = _require_running(session.domain, session.uri, "an NMI")
        try:
            answer = session.domain.injectNMI(0)
        except libvirt.libvirtError as exc:
            raise oob.OobError("virDomainInjectNMI to domain %s on %s failed: %s"
                               % (session.domain.name(), session.uri, _error_text(exc)))
        return {"request": {"call": "virDomainInjectNMI", "uri": session.uri, "domain": session.domain.name()},
                "response": {"return": answer, "state_before": state, "uuid": session.domain.UUIDString()}}
