"""What counts as routed as before once a broken link is back."""
from testbed.routing.convergence import _moved

BEFORE = ((("192.168.2.0/24", ("t-B",)), ("192.168.3.0/24", ("t-B", "t-C"))),)


def test_a_route_still_around_the_restored_link_has_moved():
    now = ((("192.168.2.0/24", ("t-C",)), ("192.168.3.0/24", ("t-C",))),)
    assert _moved(now, BEFORE) == [(0, "192.168.2.0/24")]


def test_one_of_several_equal_cost_hops_kept_is_as_before():
    now = ((("192.168.2.0/24", ("t-B",)), ("192.168.3.0/24", ("t-C",))),)
    assert _moved(now, BEFORE) == []
