#!/bin/sh
# Example node configuration hook: today's manual IIPtran (RFC 3884 3) on
# one VN node, with ip(8) and FRR, from the plan the testbed writes on stdin
# (JSON; see the README's "Bring your own node configuration").
#
# For each virtual link: an ipip device with the link's VN address, strict
# reverse-path filtering on it, and a transport-mode SA pair selecting IP
# protocol 4 between the two base addresses, with the keys the plan gives
# (both ends must agree). Then zebra and ospfd, OSPF point-to-point on the
# tunnel devices only, the LAN passive.
#
# IIPTRAN_EXAMPLE_SA_MODE=tunnel builds the same with tunnel-mode SAs: the
# deliberately wrong twin (topologies/hooks/iiptran-tunnel-mode.sh).
set -eu

plan=$(cat)
mode=${IIPTRAN_EXAMPLE_SA_MODE:-transport}
# The plan's fields as shell variables, one jq per read (a process start
# costs under emulation).
eval "$(printf '%s\n' "$plan" | jq -r '@sh "node=\(.node) ns=\(.netns) in_node=\(.exec | join(" "))
    event=\(.event) new_links=\(.new_links | join(" ")) daemon=\(.routing.daemon) bfd=\(.bfd.enabled)
    space=\(.routing.pathspace) folder=\(.routing.folder) ttl=\(.tunnel_ttl) hello=\(.ospf.hello)
    dead=\(.ospf.dead) lan=\(.lan) lan_device=\(.lan_device) count=\(.tunnels | length)"')"

if [ "$daemon" != frr ] || [ "$bfd" = true ]; then
    echo "$0: this example configures FRR OSPF without BFD; the lab asks for $daemon, BFD $bfd" >&2
    exit 1
fi

read_link() {   # read_link INDEX: one link end's fields as shell variables
    eval "$(printf '%s\n' "$plan" | jq -r --argjson i "$1" '.tunnels[$i] | @sh "label=\(.label)
        dev=\(.device) local=\(.local_base) remote=\(.remote_base) vn=\(.vn_address)/\(.prefixlen)
        cost=\(.cost) out_spi=\(.sa_out.spi) out_reqid=\(.sa_out.reqid) out_crypto=\(.sa_out.crypto | join(" "))
        in_spi=\(.sa_in.spi) in_reqid=\(.sa_in.reqid) in_crypto=\(.sa_in.crypto | join(" "))"')"
}

sa_and_policy() {   # sa_and_policy DIR SRC DST SPI REQID CRYPTO
    selector="sel src $2/32 dst $3/32 proto 4"
    [ "$mode" = transport ] || selector=""
    # shellcheck disable=SC2086  # the crypto words and the selector split on purpose
    ip -n "$ns" xfrm state add src "$2" dst "$3" proto esp spi "$4" reqid "$5" mode "$mode" \
        replay-window 32 $6 $selector
    ip -n "$ns" xfrm policy add src "$2/32" dst "$3/32" proto 4 dir "$1" \
        tmpl src "$2" dst "$3" proto esp reqid "$5" mode "$mode" level required
}

build_link() {   # the current link's device and IPsec
    ip -n "$ns" link add "$dev" type ipip local "$local" remote "$remote" ttl "$ttl" tos inherit pmtudisc
    ip -n "$ns" addr add "$vn" dev "$dev"
    ip -n "$ns" link set "$dev" multicast on up
    ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$dev.rp_filter=1"
    sa_and_policy out "$local" "$remote" "$out_spi" "$out_reqid" "$out_crypto"
    sa_and_policy in "$remote" "$local" "$in_spi" "$in_reqid" "$in_crypto"
}

ospf_lines() {   # the current link's OSPF interface, one line each
    printf 'interface %s\n ip ospf network point-to-point\n ip ospf hello-interval %s\n' "$dev" "$hello"
    printf ' ip ospf dead-interval %s\n ip ospf cost %s\n ip ospf area 0\n' "$dead" "$cost"
}

i=0
config=""
while [ "$i" -lt "$count" ]; do
    read_link "$i"
    case "$event: $new_links " in
    "up:"*)
        build_link
        config="$config$(ospf_lines)
!
" ;;
    *" $label "*)
        build_link
        # A running ospfd learns the new interface through vtysh.
        set -- -c "configure terminal"
        while IFS= read -r line; do set -- "$@" -c "$line"; done <<EOF
$(ospf_lines)
EOF
        $in_node vtysh -N "$space" "$@" >/dev/null ;;
    esac
    i=$((i + 1))
done
[ "$event" = up ] || exit 0

$in_node mkdir -p "$folder"
{
    printf 'frr defaults traditional\nhostname %s\nlog file %s/ospfd.log\n!\n%s' "$node" "$folder" "$config"
    printf 'interface %s\n ip ospf area 0\n!\n' "$lan_device"
    printf 'router ospf\n ospf router-id %s\n passive-interface %s\n' "${lan%/*}" "$lan_device"
    printf ' timers throttle spf 0 50 1000\n timers throttle lsa all 0\n timers lsa min-arrival 0\n!\n'
} | $in_node sh -c "cat > '$folder/ospfd.conf'"
printf 'frr defaults traditional\nhostname %s\nlog file %s/zebra.log\n!\n' "$node" "$folder" |
    $in_node sh -c "cat > '$folder/zebra.conf'"
$in_node chown frr:frr /run/frr "$folder" "$folder/zebra.conf" "$folder/ospfd.conf"
for daemon in zebra ospfd; do
    $in_node /usr/lib/frr/$daemon -d -N "$space" -f "$folder/$daemon.conf" -i "$folder/$daemon.pid"
done
