"""A node's SAD read over netlink (NETLINK_XFRM) in this process.

The checks that follow an SA poll the SAD (counters, replay state, a rekey
in progress), and an `ip -s xfrm state` process costs about 60 ms of CPU
under emulation: a fig6 run read it some 120 times. pyroute2 has no xfrm
API, so the kernel's dump (linux/xfrm.h) is parsed here into the same
records as iproute2's text (testbed/probe/xfrm.py parse_states); the two
are compared on a real kernel by the self-test (tests/kernel).
"""
from __future__ import annotations

import ipaddress
import socket
import struct

from testbed.runtime.netlink_dump import attributes, dump

NETLINK_XFRM = 6
XFRM_MSG_NEWSA, XFRM_MSG_GETSA = 0x10, 0x12
XFRM_INF = 2 ** 64 - 1

# Attributes (enum xfrm_attr_type_t).
XFRMA_ALG_AUTH, XFRMA_ALG_CRYPT = 1, 2
XFRMA_REPLAY_VAL = 10
XFRMA_ALG_AEAD = 18
XFRMA_ALG_AUTH_TRUNC = 20
XFRMA_REPLAY_ESN_VAL = 23
XFRMA_IF_ID = 31

MODES = {0: "transport", 1: "tunnel", 2: "ro", 3: "in_trigger", 4: "beet"}
PROTOCOLS = {50: "esp", 51: "ah", 108: "comp", 43: "route2", 60: "hao", 255: "ipsec-any"}

# struct xfrm_usersa_info: selector (56), id (daddr, spi, proto: 24), saddr
# (16), lifetime config (8 x u64), current lifetime (4 x u64), stats (3 x
# u32), seq, reqid, family, mode, replay_window, flags; 224 octets.
SELECTOR = struct.Struct("=16s16sHHHHHBBB3xiI")
USERSA_ID = struct.Struct("=16s4sB3x")
USERSA_INFO_SIZE = 224
LIFETIME_CFG = struct.Struct("=8Q")
LIFETIME_CUR = struct.Struct("=4Q")
TAIL = struct.Struct("=3III HBBB")        # stats, seq, reqid, family, mode, replay_window, flags
ALGO = struct.Struct("=64sI")              # xfrm_algo: name, key length in bits, key
ALGO_WITH_LEN = struct.Struct("=64sII")    # xfrm_algo_auth / _aead: ... truncation or ICV length in bits, key


def _address(raw: bytes, family: int) -> str:
    return str(ipaddress.ip_address(raw[:4] if family == socket.AF_INET else raw))


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode()


def _limit(value: int) -> int:
    return 0 if value == XFRM_INF else value      # INFINITE, as the text parser reads (INF)


def parse_sa(payload: bytes) -> dict:
    """One XFRM_MSG_NEWSA payload as the keyword arguments of KernelSA (and
    its Lifetime and Selector), as `ip -s xfrm state` would print them."""
    (sel_d, sel_s, _dport, _dmask, _sport, _smask, sel_family, plen_d, plen_s, sel_proto, _ifindex,
     _user) = SELECTOR.unpack_from(payload, 0)
    daddr, spi, proto = USERSA_ID.unpack_from(payload, SELECTOR.size)
    saddr = payload[SELECTOR.size + USERSA_ID.size:SELECTOR.size + USERSA_ID.size + 16]
    lft = LIFETIME_CFG.unpack_from(payload, 96)
    cur_bytes, cur_packets, _added, _used = LIFETIME_CUR.unpack_from(payload, 160)
    (_stat_window, _stat_replay, _stat_failed, _seq, reqid, family, mode, replay_window,
     _flags) = TAIL.unpack_from(payload, 192)
    sel_family = sel_family or family
    fields = {
        "src": _address(saddr, family), "dst": _address(daddr, family), "spi": int.from_bytes(spi, "big"),
        "proto": PROTOCOLS.get(proto, str(proto)), "reqid": reqid, "mode": MODES.get(mode, str(mode)),
        "replay_window": replay_window, "packets": cur_packets, "bytes": cur_bytes,
        "selector": (f"{_address(sel_s, sel_family)}/{plen_s}", f"{_address(sel_d, sel_family)}/{plen_d}", sel_proto),
        "lifetime": {"soft_bytes": _limit(lft[0]), "hard_bytes": _limit(lft[1]), "soft_packets": _limit(lft[2]),
                     "hard_packets": _limit(lft[3]), "soft_add_s": lft[4], "hard_add_s": lft[5],
                     "soft_use_s": lft[6], "hard_use_s": lft[7]}}
    attrs = attributes(payload, USERSA_INFO_SIZE)
    if XFRMA_ALG_AEAD in attrs:
        name, bits, icv = ALGO_WITH_LEN.unpack_from(attrs[XFRMA_ALG_AEAD])
        fields.update(encryption=_name(name), aead=True, key_bits=bits, icv_bits=icv,
                      key=attrs[XFRMA_ALG_AEAD][ALGO_WITH_LEN.size:][:bits // 8].hex())
    if XFRMA_ALG_CRYPT in attrs:
        name, bits = ALGO.unpack_from(attrs[XFRMA_ALG_CRYPT])
        fields.update(encryption=_name(name), key_bits=bits, key=attrs[XFRMA_ALG_CRYPT][ALGO.size:][:bits // 8].hex())
    if XFRMA_ALG_AUTH_TRUNC in attrs:          # iproute2 shows it in place of the plain auth attribute
        name, bits, trunc = ALGO_WITH_LEN.unpack_from(attrs[XFRMA_ALG_AUTH_TRUNC])
        fields.update(integrity=_name(name), auth_key_bits=bits, icv_bits=trunc,
                      auth_key=attrs[XFRMA_ALG_AUTH_TRUNC][ALGO_WITH_LEN.size:][:bits // 8].hex())
    elif XFRMA_ALG_AUTH in attrs:
        name, bits = ALGO.unpack_from(attrs[XFRMA_ALG_AUTH])
        fields.update(integrity=_name(name), auth_key_bits=bits,
                      auth_key=attrs[XFRMA_ALG_AUTH][ALGO.size:][:bits // 8].hex())
    if XFRMA_IF_ID in attrs:
        fields["if_id"] = int.from_bytes(attrs[XFRMA_IF_ID][:4], "little")
    if XFRMA_REPLAY_ESN_VAL in attrs:          # bmp_len, oseq, seq, oseq_hi, seq_hi, replay_window
        _bmp_len, oseq, seq, _oseq_hi, _seq_hi, window = struct.unpack_from("=6I", attrs[XFRMA_REPLAY_ESN_VAL])
        fields.update(oseq=oseq, seq=seq, replay_window=max(replay_window, window))
    elif XFRMA_REPLAY_VAL in attrs:
        oseq, seq, bitmap = struct.unpack_from("=3I", attrs[XFRMA_REPLAY_VAL])
        fields.update(oseq=oseq, seq=seq, bitmap=bitmap)
    return fields


def dump_sas(netns: str) -> list[dict]:
    """Every SA of the namespace's SAD, as parse_sa gives it."""
    return [parse_sa(payload) for kind, payload in dump(netns, NETLINK_XFRM, XFRM_MSG_GETSA) if kind == XFRM_MSG_NEWSA]
