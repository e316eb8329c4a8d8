#!/bin/sh
# First process of the guest after switch_root, running from the host's
# filesystem: fresh scratch mounts, then the job the host asked for.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /run/lock /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# devtmpfs has no /dev/fd or std* links (udev makes them elsewhere): bash's
# process substitution <(...) needs them.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
for n in 0:stdin 1:stdout 2:stderr; do [ -e "/dev/${n#*:}" ] || ln -s "/proc/self/fd/${n%%:*}" "/dev/${n#*:}"; done
# For the Docker backend's engine (runc puts each container in a cgroup).
mount -t cgroup2 cgroup2 /sys/fs/cgroup
hostname iiptran-guest
# Booted quietly; from here on warnings reach the console too, so a kernel
# soft lockup (which panics the guest: softlockup_panic=1) comes with its
# stack trace instead of hanging the run.
echo 5 > /proc/sys/kernel/printk
ip link set lo up
# Hold the kernel's receive-timestamp static key on for the guest's life:
# every iputils ping asks for SO_TIMESTAMP, so the checks' pings would
# otherwise patch that jump label in and out again and again, and a patch
# racing packet reception on the other emulated CPU livelocked the guest
# (soft lockup, both CPUs, at the label in netif_receive_skb_list_internal).
ping -q -i 3600 127.0.0.1 >/dev/null 2>&1 &

# Load the datapath's modules (ipip, esp4, AES-GCM, veth, ...) on the idle
# second CPU while the job's Python starts: the same kernel requests a lab
# makes, in a throwaway namespace.
(
  ip netns add iipt-warmup &&
  ip -n iipt-warmup link add iipt-w0 type veth peer name iipt-w1 &&
  ip -n iipt-warmup link add iipt-w2 type ipip local 192.0.2.1 remote 192.0.2.2 &&
  ip -n iipt-warmup link add iipt-w3 type dummy &&
  ip -n iipt-warmup xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1000 mode transport \
    aead 'rfc4106(gcm(aes))' 0x1111111111111111111111111111111111111111 128
  ip netns delete iipt-warmup
) >/dev/null 2>&1 &

for arg in $(cat /proc/cmdline); do
  case "$arg" in iiptran.job=*) JOB="${arg#*=}" ;; esac
done

# The serial console is the job's controlling terminal, so a Ctrl-C typed on
# the host reaches the job as SIGINT and its cleanup runs.
setsid -w -c /bin/sh "$JOB" <>/dev/ttyS0 >&0 2>&1
sync
# Power off. Init must not exit before that lands (the kernel would panic),
# and nothing may be started once it has begun, so the waiter comes first.
# `wait` also returns when an orphan reparented to init (a daemon of a
# killed run) is reaped, hence the loop.
sleep 60 >/dev/null 2>&1 &
echo o >/proc/sysrq-trigger
while :; do wait; done
