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
get() { printf '%s\n' "$plan" | jq -r "$@"; }
mode=${IIPTRAN_EXAMPLE_SA_MODE:-transport}
ns=$(get .netns)
in_node=$(get '.exec | join(" ")')          # runs a command inside the node (namespace or container)
event=$(get .event)                          # up: first time; links-added: only .new_links are new

if [ "$(get .routing.daemon)" != frr ] || [ "$(get .bfd.enabled)" = true ]; then
    echo "$0: this example configures FRR OSPF without BFD; the lab asks for $(get .routing.daemon)," \
         "BFD $(get .bfd.enabled)" >&2
    exit 1
fi

link() {   # link INDEX: one virtual link end, devices and IPsec
    t() { get ".tunnels[$1].$2"; }
    dev=$(t "$1" device) local=$(t "$1" local_base) remote=$(t "$1" remote_base)
    ip -n "$ns" link add "$dev" type ipip local "$local" remote "$remote" ttl "$(get .tunnel_ttl)" tos inherit pmtudisc
    ip -n "$ns" addr add "$(t "$1" vn_address)/$(t "$1" prefixlen)" dev "$dev"
    ip -n "$ns" link set "$dev" multicast on up
    ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$dev.rp_filter=1"
    for dir in out in; do
        if [ $dir = out ]; then src=$local dst=$remote; else src=$remote dst=$local; fi
        selector="sel src $src/32 dst $dst/32 proto 4"
        [ "$mode" = transport ] || selector=""
        # shellcheck disable=SC2046,SC2086  # the crypto words and selector split on purpose
        ip -n "$ns" xfrm state add src "$src" dst "$dst" proto esp spi "$(t "$1" "sa_$dir.spi")" \
            reqid "$(t "$1" "sa_$dir.reqid")" mode "$mode" replay-window 32 \
            $(t "$1" "sa_$dir.crypto | join(\" \")") $selector
        ip -n "$ns" xfrm policy add src "$src/32" dst "$dst/32" proto 4 dir "$dir" \
            tmpl src "$src" dst "$dst" proto esp reqid "$(t "$1" "sa_$dir.reqid")" mode "$mode" level required
    done
}

ospf_interface() {   # ospf_interface INDEX: the config lines of one tunnel device
    printf 'interface %s\n ip ospf network point-to-point\n ip ospf hello-interval %s\n' \
        "$(get ".tunnels[$1].device")" "$(get .ospf.hello)"
    printf ' ip ospf dead-interval %s\n ip ospf cost %s\n ip ospf area 0\n!\n' \
        "$(get .ospf.dead)" "$(get ".tunnels[$1].cost")"
}

count=$(get '.tunnels | length')
space=$(get .routing.pathspace) folder=$(get .routing.folder)
i=0
while [ "$i" -lt "$count" ]; do
    if [ "$event" = up ] || get ".new_links | index(\"$(get ".tunnels[$i].label")\") != null" | grep -q true; then
        link "$i"
        if [ "$event" = links-added ]; then
            ospf_interface "$i" | sed '/^!$/d' | {
                set -- -c "configure terminal"
                while IFS= read -r line; do set -- "$@" -c "$line"; done
                $in_node vtysh -N "$space" "$@" >/dev/null
            }
        fi
    fi
    i=$((i + 1))
done
[ "$event" = up ] || exit 0

router_id=$(get '.lan | split("/")[0]')
{
    echo "frr defaults traditional"; echo "hostname $(get .node)"; echo "log file $folder/ospfd.log"; echo "!"
    i=0
    while [ "$i" -lt "$count" ]; do ospf_interface "$i"; i=$((i + 1)); done
    printf 'interface %s\n ip ospf area 0\n!\n' "$(get .lan_device)"
    printf 'router ospf\n ospf router-id %s\n passive-interface %s\n' "$router_id" "$(get .lan_device)"
    printf ' timers throttle spf 0 50 1000\n timers throttle lsa all 0\n timers lsa min-arrival 0\n!\n'
} > "${TMPDIR:-/tmp}/ospfd.$$"
$in_node mkdir -p "$folder"
$in_node sh -c "cat > '$folder/ospfd.conf'" < "${TMPDIR:-/tmp}/ospfd.$$"
rm -f "${TMPDIR:-/tmp}/ospfd.$$"
printf 'frr defaults traditional\nhostname %s\nlog file %s/zebra.log\n!\n' "$(get .node)" "$folder" |
    $in_node sh -c "cat > '$folder/zebra.conf'"
$in_node chown frr:frr /run/frr "$folder" "$folder/zebra.conf" "$folder/ospfd.conf"
for daemon in zebra ospfd; do
    $in_node /usr/lib/frr/$daemon -d -N "$space" -f "$folder/$daemon.conf" -i "$folder/$daemon.pid"
done
