"""make bench's scale figures: a table and a plot from what was measured."""
from testbed.bench_scale import plot, table

DATA = {"measured": "2026-11-27 18:00", "rows": [
    {"nodes": 4, "up_to_converged_s": 7.9, "datapath_s": 1.0, "rss_mb": 60.9, "rss_per_node_mb": 15.2,
     "processes": 8, "sas": 16, "policies": 32, "interfaces": 30, "down_s": 1.1},
    {"nodes": 8, "up_to_converged_s": 14.5, "datapath_s": 2.0, "rss_mb": 124.0, "rss_per_node_mb": 15.5,
     "processes": 16, "sas": 32, "policies": 64, "interfaces": 60, "down_s": 2.0}]}


def test_table_has_a_row_per_size_and_the_plot_is_a_png(tmp_path):
    text = table(DATA)
    assert "converged s" in text and "MB per node" in text
    assert [line.split()[:2] for line in text.splitlines()[2:]] == [["frr", "4"], ["frr", "8"]]
    out = plot({**DATA, "rows": DATA["rows"] + [{**DATA["rows"][0], "routing": "bird"}]}, tmp_path / "scale.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_datapath_costs_are_given_as_ratios_to_iiptran():
    from testbed.bench_datapath import table, with_ratios
    rows = with_ratios([{"mode": "iiptran", "mbit_s": 40.0, "vn_packet_bytes": 1028, "wire_bytes": 1080,
                         "overhead_bytes": 52},
                        {"mode": "tunnel-policy", "mbit_s": 44.0, "vn_packet_bytes": 1028, "wire_bytes": 1080,
                         "overhead_bytes": 52}])
    assert (rows[0]["throughput_ratio"], rows[1]["throughput_ratio"], rows[1]["wire_ratio"]) == (1.0, 1.1, 1.0)
    assert "x IIPtran" in table({"rows": rows})


def test_plain_reference_script_builds_what_up_builds_with_ip_and_frr_alone():
    from testbed.bench_plain import up_script
    from testbed.topology.loader import load
    from testbed.topology.plan import build_plan
    script = up_script(build_plan(load("fig6")), "pl")
    assert "python" not in script and "netns add pl-N" in script, "every node's namespace, N's included"
    assert "type ipip local" in script and "xfrm state add" in script and "xfrm policy add" in script
    assert "t-N" not in script, "N starts detached: its links are not built by up"
    assert script.count("/usr/lib/frr/ospfd") == 3 and script.rstrip().endswith("do sleep 0.05; done")
