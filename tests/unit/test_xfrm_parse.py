"""Reading the SAD and SPD from `ip -s xfrm` output as the guest kernel (6.1) prints it."""
from __future__ import annotations

from pathlib import Path

from testbed.probe.xfrm import IpsecState, Selector, parse_policies, parse_states

DATA = Path(__file__).with_name("data")


def states():
    return {sa.spi: sa for sa in parse_states((DATA / "xfrm_state.txt").read_text())}


def test_every_state_with_mode_selector_and_replay_window():
    found = states()
    assert sorted(found) == [0x0abc, 0x1234, 0x5678, 0x9abc, 0xdef0]
    gcm = found[0x1234]
    assert (gcm.src, gcm.dst, gcm.reqid, gcm.mode, gcm.replay_window) == ("10.1.1.2", "10.1.2.2", 100, "transport", 32)
    assert gcm.selector == Selector("10.1.1.2/32", "10.1.2.2/32", 4)
    assert gcm.algorithm == "rfc4106-gcm-aes" and gcm.key == "11" * 20 and gcm.authenticated
    assert found[0xdef0].mode == "tunnel" and found[0xdef0].if_id == 3
    assert found[0xdef0].selector == Selector("0.0.0.0/0", "0.0.0.0/0", 0)


def test_algorithms_and_authentication():
    found = states()
    cbc = found[0x5678]
    assert cbc.algorithm == "cbc-aes-hmac-sha256" and cbc.auth_key == "33" * 32 and cbc.authenticated
    bare = found[0x9abc]
    assert bare.algorithm == "cbc-aes" and not bare.authenticated and bare.replay_window == 0


def test_esn_replay_window_is_read_from_the_esn_context():
    assert states()[0x0abc].replay_window == 64


def test_a_kernel_sa_decrypts_like_the_testbeds_own_record():
    sa = states()[0x1234].as_sa("AB")
    assert (sa.spi, sa.algorithm, sa.key, sa.link, sa.mode) == (0x1234, "rfc4106-gcm-aes", "11" * 20, "AB", "transport")


def test_policies_with_templates_levels_and_actions():
    found = parse_policies((DATA / "xfrm_policy.txt").read_text())
    by_dir = {(p.direction, p.selector.src): p for p in found}
    out = by_dir[("out", "10.1.1.2/32")]
    assert out.selector.proto == 4 and out.action == "allow"
    assert [(t.src, t.dst, t.proto, t.reqid, t.mode, t.level) for t in out.templates] == [
        ("10.1.1.2", "10.1.2.2", "esp", 100, "transport", "required")]
    inbound = by_dir[("in", "10.1.2.2/32")]
    assert inbound.priority == 7 and inbound.templates[0].level == "use"
    assert by_dir[("fwd", "0.0.0.0/0")].if_id == 3
    assert by_dir[("out", "192.168.1.0/24")].action == "block" and not by_dir[("out", "192.168.1.0/24")].templates


def test_entries_change_when_a_key_changes_but_not_with_counters():
    text = (DATA / "xfrm_state.txt").read_text()
    before = IpsecState(parse_states(text)).entries()
    rekeyed = IpsecState(parse_states(text.replace("11" * 20, "77" * 20))).entries()
    counted = IpsecState(parse_states(text.replace("\t  0(bytes), 0(packets)", "\t  840(bytes), 7(packets)"))).entries()
    assert rekeyed != before and counted == before



def test_protocol_names_are_looked_up_one_at_a_time(monkeypatch):
    """libc's getprotobyname returns a shared buffer: two nodes read side by
    side once made 'ipencap' read as 0 ('ip', i.e. any protocol)."""
    import threading
    import time

    from testbed import protocols
    inside, most = [0], [0]
    lock = threading.Lock()

    def slow_lookup(name):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.01)
        with lock:
            inside[0] -= 1
        return 4

    monkeypatch.setattr(protocols.socket, "getprotobyname", slow_lookup)
    monkeypatch.setattr(protocols, "_NUMBERS", {})
    threads = [threading.Thread(target=protocols.protocol_number, args=(f"name{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1
    assert protocols.protocol_number("name3") == 4


def test_the_replay_window_tells_which_numbers_were_taken():
    """What send_forged reads to know the receiver took its packets (a
    replay counter cannot tell whose packet it dropped)."""
    from dataclasses import replace
    sa = replace(states()[0x1234], seq=0x40, bitmap=0b1011)        # 0x40, 0x3f, 0x3d taken
    assert [n for n in range(0x3b, 0x42) if sa.received(n)] == [0x3d, 0x3f, 0x40]
    assert not replace(sa, bitmap=0).received(0x41) and replace(sa, bitmap=0).received(0x30)
