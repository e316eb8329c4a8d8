"""What a pluto holds, read from `whack --showstates` and `whack --status`
(libreswan 4.x prints text only) into the neutral views of negotiated.py.

- states: `#1: "link-A-B":500 STATE_V2_ESTABLISHED_IKE_SA (...); REKEY in 13766s; REPLACE in 14397s; ...`
  and for a Child SA `... STATE_V2_ESTABLISHED_CHILD_SA (...); REKEY in 3000s; ...; IKE SA #1; ...`, then
  `#2: "link-A-B" esp.c0ffee02@10.0.0.2 esp.c0ffee01@10.0.0.1 ...` (outbound SPI first);
- per connection: `"link-A-B": 10.0.0.1/32:IPv4/0-65535===10.0.0.1...10.0.0.2===10.0.0.2/32:IPv4/0-65535; ...`
  (hosts and traffic selectors), `IKEv2 algorithm newest: AES_GCM_16_128-HMAC_SHA2_256-DH19`,
  `ESP algorithm newest: AES_GCM_16_128-NONE; pfsgroup=DH19`, `policy: IKEv2+...+PFS+...`.

pluto shows no IKE SPIs: an IKE_SA's identity is its state number.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from testbed.keying.negotiated import ESTABLISHED, INSTALLED, ChildSaView, IkeSaView, TrafficSelector
from testbed.protocols import protocol_number

LINE = re.compile(r"^\d{3} ")
STATE = re.compile(r'^#(?P<serial>\d+): "(?P<conn>[^"]+)"(?::\d+)? (?P<name>STATE_\w+) \((?P<what>[^)]*)\)(?P<rest>.*)$')
SPIS = re.compile(r'^#(?P<serial>\d+): "(?P<conn>[^"]+)" (?P<proto>esp|ah)\.(?P<out>[0-9a-f]+)@\S+ '
                  r'(?:esp|ah)\.(?P<in>[0-9a-f]+)@\S+')
TIMER = re.compile(r"(REKEY|REPLACE|EXPIRE) in (\d+)s")
PARENT = re.compile(r"IKE SA #(\d+)")
CONN_LINE = re.compile(r'^"(?P<conn>[^"]+)": (?P<ends>\S+\.\.\.\S+?);')
SETTING = re.compile(r'^"(?P<conn>[^"]+)":\s+(?P<text>.*)$')
CIPHER_BITS = re.compile(r"^(?P<cipher>[A-Z0-9_]+?)_(?P<bits>\d+)$")
GROUPS = {"MODP1024": 2, "MODP1536": 5, "MODP2048": 14, "MODP3072": 15, "MODP4096": 16, "MODP8192": 18}
AEAD = ("GCM", "CCM", "POLY1305")
STATE_NAMES = {"STATE_V2_ESTABLISHED_IKE_SA": ESTABLISHED, "STATE_V2_ESTABLISHED_CHILD_SA": INSTALLED}
# libreswan's names -> IANA's (RFC 7296, RFC 8221).
CIPHERS = {"AES_GCM_16": "ENCR_AES_GCM_16", "AES_GCM_12": "ENCR_AES_GCM_12", "AES_GCM_8": "ENCR_AES_GCM_8",
           "AES_CBC": "ENCR_AES_CBC", "3DES_CBC": "ENCR_3DES", "CHACHA20_POLY1305": "ENCR_CHACHA20_POLY1305"}
INTEGRITY = {"HMAC_SHA2_256": "AUTH_HMAC_SHA2_256_128", "HMAC_SHA2_384": "AUTH_HMAC_SHA2_384_192",
             "HMAC_SHA2_512": "AUTH_HMAC_SHA2_512_256", "HMAC_SHA1": "AUTH_HMAC_SHA1_96", "NONE": ""}
PRFS = {"HMAC_SHA2_256": "PRF_HMAC_SHA2_256", "HMAC_SHA2_384": "PRF_HMAC_SHA2_384",
        "HMAC_SHA2_512": "PRF_HMAC_SHA2_512", "HMAC_SHA1": "PRF_HMAC_SHA1"}


@dataclass
class _Conn:
    me: str = ""
    peer: str = ""
    local_ts: tuple[TrafficSelector, ...] = ()
    remote_ts: tuple[TrafficSelector, ...] = ()
    ike: str = ""                     # IKEv2 algorithm newest
    esp: str = ""                     # ESP algorithm newest
    pfs: bool = False
    mode: str = "TRANSPORT"


@dataclass
class _State:
    serial: str
    conn: str
    name: str
    timers: dict[str, int]
    parent: str = ""
    spi_in: int = 0
    spi_out: int = 0


def _lines(text: str) -> list[str]:
    return [LINE.sub("", line, count=1) for line in text.splitlines()]


def _selector(text: str) -> TrafficSelector:
    """'10.0.0.1/32:IPv4/0-65535' (protocol 4), '10.0.0.0/24' (any protocol)."""
    prefix, _, rest = text.partition(":")
    name = rest.split("/")[0]
    if not name or name == "0":
        return TrafficSelector(prefix, 0)
    return TrafficSelector(prefix, 4 if name == "IPv4" else protocol_number(name.lower()))


def _ends(text: str) -> _Conn:
    """'10.0.0.1/32:IPv4/0-65535===10.0.0.1...10.0.0.2===10.0.0.2/32:IPv4/0-65535' (a client behind
    each host, or none: 'A...B')."""
    left, _, right = text.partition("...")
    local, _, me = left.rpartition("===")
    peer, _, remote = right.partition("===")
    return _Conn(me, peer, (_selector(local or f"{me}/32"),), (_selector(remote or f"{peer}/32"),))


def _connections(status: str) -> dict[str, _Conn]:
    found: dict[str, _Conn] = {}
    for line in _lines(status):
        head = CONN_LINE.match(line)
        if head:
            found[head["conn"]] = _ends(head["ends"])
            continue
        setting = SETTING.match(line)
        if not setting or setting["conn"] not in found:
            continue
        conn, text = found[setting["conn"]], setting["text"]
        if text.startswith("IKEv2 algorithm newest:"):
            conn.ike = text.split(":", 1)[1].strip()
        elif text.startswith("ESP algorithm newest:"):
            conn.esp = text.split(":", 1)[1].strip()
        elif text.startswith("policy:"):
            conn.pfs = "+PFS" in text
            conn.mode = "TUNNEL" if "+TUNNEL" in text else "TRANSPORT"
    return found


def _algorithm(text: str) -> tuple[str, int, list[str], int | None]:
    """'AES_GCM_16_128-HMAC_SHA2_256-DH19' -> ('ENCR_AES_GCM_16', 128, ['HMAC_SHA2_256'], 19): the cipher,
    its key bits, the parts between (PRF and integrity for an IKE_SA, integrity for ESP) and the group."""
    parts = text.split(";")[0].strip().split("-")
    head = CIPHER_BITS.match(parts[0])
    if not head:
        return "", 0, [], None
    group = None
    if parts[-1].startswith("DH") and parts[-1][2:].isdigit():
        group, parts = int(parts[-1][2:]), parts[:-1]
    elif parts[-1] in GROUPS:
        group, parts = GROUPS[parts[-1]], parts[:-1]
    return CIPHERS.get(head["cipher"], f"ENCR_{head['cipher']}"), int(head["bits"]), parts[1:], group


def _aead(cipher: str) -> bool:
    return any(word in cipher for word in AEAD)


def _integrity(name: str) -> str:
    return INTEGRITY.get(name, f"AUTH_{name}") if name else ""


def _pfs_group(esp: str, ike_group: int | None, pfs: bool) -> int | None:
    named = re.search(r"pfsgroup=DH(\d+)", esp)
    if named:
        return int(named.group(1))
    return ike_group if pfs else None         # pfsgroup=<Phase1>: the IKE_SA's group


def parse_states(showstates: str, status: str) -> dict[str, list[IkeSaView]]:
    """Every IKE_SA pluto holds with its Child SAs, by connection name."""
    conns = _connections(status)
    states: dict[str, _State] = {}
    for line in _lines(showstates):
        state = STATE.match(line)
        if state:
            parent = PARENT.search(state["rest"])
            states[state["serial"]] = _State(state["serial"], state["conn"], state["name"],
                                             {k: int(v) for k, v in TIMER.findall(state["rest"])},
                                             parent.group(1) if parent else "")
            continue
        spis = SPIS.match(line)
        if spis and spis["serial"] in states:
            states[spis["serial"]].spi_out, states[spis["serial"]].spi_in = int(spis["out"], 16), int(spis["in"], 16)
    found: dict[str, list[IkeSaView]] = {}
    for ike in (s for s in states.values() if not s.parent):
        conn = conns.get(ike.conn, _Conn())
        cipher, bits, between, group = _algorithm(conn.ike)
        prf = between[0] if between else ""
        integrity = "" if _aead(cipher) else (between[1] if len(between) > 1 else prf)
        children = tuple(_child(child, conn, group) for child in states.values() if child.parent == ike.serial)
        found.setdefault(ike.conn, []).append(IkeSaView(
            STATE_NAMES.get(ike.name, ike.name), cipher, bits, _integrity(integrity),
            PRFS.get(prf, f"PRF_{prf}" if prf else ""), group, ike.timers.get("REKEY"), None, children,
            conn.me, conn.peer, f"#{ike.serial}", ike.serial))
    return found


def _child(state: _State, conn: _Conn, ike_group: int | None) -> ChildSaView:
    cipher, bits, between, _ = _algorithm(conn.esp)
    life = state.timers.get("EXPIRE", state.timers.get("REPLACE"))
    return ChildSaView(STATE_NAMES.get(state.name, state.name), conn.mode, cipher, bits,
                       _integrity(between[0] if between else ""), _pfs_group(conn.esp, ike_group, conn.pfs),
                       state.timers.get("REKEY"), life, state.spi_in, state.spi_out, conn.local_ts, conn.remote_ts,
                       state.serial)
