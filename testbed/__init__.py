"""IIPtran testbed: RFC 3884 topologies on the real kernel datapath."""

__version__ = "0.1.0"
