#!/bin/busybox sh
# Guest init: mount the host's filesystem (read-only, under a tmpfs overlay so
# the guest may write scratch files that vanish with it), mount the writable
# shares over it, and switch_root into the guest entry script.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

fail() { echo "iiptran-guest: $*" >/dev/console; echo o >/proc/sysrq-trigger; sleep 60; }

for m in $(cat /modules/order); do insmod "/modules/$m" || fail "insmod $m failed"; done

for arg in $(cat /proc/cmdline); do
  case "$arg" in
    iiptran.modules=*) MODULES="${arg#*=}" ;;
    iiptran.rw=*) RW="${arg#*=}" ;;
    iiptran.entry=*) ENTRY="${arg#*=}" ;;
    iiptran.keep=*) KEEP="${arg#*=}" ;;
  esac
done

P9="trans=virtio,version=9p2000.L,msize=512000"
mount -t 9p -o "$P9,ro,cache=loose" hostroot /lower || fail "cannot mount the host filesystem"
mount -t tmpfs -o mode=0755 tmpfs /upper
mkdir -p /upper/data /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work /newroot \
  || fail "cannot mount the overlay root"

# The guest kernel's own modules, where its modprobe looks for them.
mkdir -p /newroot/lib/modules
mount --bind "/lower$MODULES" /newroot/lib/modules

# Fresh scratch space; mounted before the shares so a share below /tmp or
# /run stays visible.
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
# Host folders the job needs that sit below those scratch mounts (a project
# cloned under /tmp, say) are shown through them again, read-only.
for path in $(echo "$KEEP" | tr ',' ' '); do
  case "$path" in
    /tmp/*|/run/*) mkdir -p "/newroot$path"; mount --bind "/lower$path" "/newroot$path" ;;
  esac
done

# Writable shares: tag:path pairs separated by commas.
for pair in $(echo "$RW" | tr ',' ' '); do
  tag="${pair%%:*}"; path="${pair#*:}"
  mkdir -p "/newroot$path"
  mount -t 9p -o "$P9,cache=none" "$tag" "/newroot$path" || fail "cannot mount share $tag on $path"
done

mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/sh "$ENTRY"
