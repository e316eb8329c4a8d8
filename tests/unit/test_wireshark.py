"""The esp_sa table the report writes makes tshark decrypt the run's ESP."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from testbed.datapath.ipsec import new_sa
from testbed.probe.esp import scapy_sa
from testbed.report.wireshark import tshark_argv, tshark_env, write_esp_sa


@pytest.mark.parametrize("algorithm", ["rfc4106-gcm-aes", "cbc-aes-hmac-sha256"])
def test_tshark_decrypts_with_the_written_table(tmp_path, algorithm):
    if shutil.which("tshark") is None:
        pytest.fail("tshark is not installed (Debian package tshark; `make system-deps` installs it)")
    sa = new_sa("10.1.1.2", "10.1.2.2", 100, algorithm, "AB")
    inner = IP(src="172.16.1.1", dst="192.168.2.1") / ICMP(type=8, id=7, seq=1) / Raw(b"iiptran-marker")
    wire = scapy_sa(sa).encrypt(IP(src=sa.src, dst=sa.dst, proto=4) / inner)
    pcap = tmp_path / "esp.pcap"
    wrpcap(str(pcap), [Ether() / wire])
    path = write_esp_sa([sa], tmp_path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    done = subprocess.run(tshark_argv(pcap) + ["-V"], env=tshark_env(tmp_path), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    # Decrypted: the inner (tunnelled) IP header and the ICMP echo show up.
    assert "Src: 172.16.1.1, Dst: 192.168.2.1" in done.stdout, done.stdout[-3000:]
    assert "Internet Control Message Protocol" in done.stdout and "Echo (ping) request" in done.stdout
