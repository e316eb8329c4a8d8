#!/bin/sh
# First process of the guest after switch_root, running from the host's
# filesystem: fresh scratch mounts, then the job the host asked for.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /run/lock /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
hostname iiptran-guest
ip link set lo up

for arg in $(cat /proc/cmdline); do
  case "$arg" in iiptran.job=*) JOB="${arg#*=}" ;; esac
done

# The serial console is the job's controlling terminal, so a Ctrl-C typed on
# the host reaches the job as SIGINT and its cleanup runs.
setsid -w -c /bin/sh "$JOB" <>/dev/ttyS0 >&0 2>&1
sync
echo o >/proc/sysrq-trigger
# Init must not exit before the power-off lands, or the kernel panics.
sleep 60
