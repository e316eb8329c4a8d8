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
    assert [line.split()[0] for line in text.splitlines()[2:]] == ["4", "8"]
    out = plot(DATA, tmp_path / "scale.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
