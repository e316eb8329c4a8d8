#!/bin/sh
# The deliberately wrong twin of iiptran-ip.sh: the same node configuration
# with tunnel-mode SAs and templates where RFC 3884 asks for transport
# mode, so each IPIP packet is wrapped once more. The suite must fail
# exactly what the built-in sa-tunnel-mode profile fails.
IIPTRAN_EXAMPLE_SA_MODE=tunnel exec "$(dirname "$0")/iiptran-ip.sh"
