"""The /init of the guest's initramfs: a busybox shell script, run as pid 1.

Kernel command line:  ``hb.mode=run|probe``, ``hb.fault=hang|panic|no-overlay`` (tests only).
Shares (9p): ``hostroot`` is the host's / (read-only); ``results`` is the host's work folder
(writable), whose ``guest/`` folder holds ``mountpoint`` (where to mount the share inside the
guest) and ``job.sh`` (the command), and receives ``status`` (its exit code) and ``dmesg.txt``.
Console lines starting with ``HELLOBENCH-GUEST: `` are read by the host (bench/vm/qemu.py).
"""

from __future__ import annotations

MARKER = "HELLOBENCH-GUEST: "

INIT_SCRIPT = r"""#!/bin/busybox sh
# /init of the hellobench guest (see bench/vm/init_script.py).

/bin/busybox mkdir -p /bin /proc /sys /dev /tmp /mnt/host /results /rw /newroot
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root

say() { echo "HELLOBENCH-GUEST: $*"; }
note() { echo "hellobench-init: $*"; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp

MODE=run
FAULT=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
    hb.mode=*) MODE=${arg#hb.mode=} ;;
    hb.fault=*) FAULT=${arg#hb.fault=} ;;
    esac
done

finish() {
    sync
    poweroff -f
    sleep 5
    echo o > /proc/sysrq-trigger
}

if [ "$MODE" = probe ]; then
    say "probe ok kernel=$(uname -r)"
    finish
fi

while read -r ko; do
    [ -n "$ko" ] || continue
    insmod "/lib/modules/$ko" || note "insmod $ko failed"
done < /etc/hellobench/modules

P9OPTS=trans=virtio,version=9p2000.L,msize=262144
if ! mount -t 9p -o "$P9OPTS,ro,cache=loose" hostroot /mnt/host; then
    say "failed: cannot mount the host root (9p tag hostroot)"
    finish
fi
if ! mount -t 9p -o "$P9OPTS" results /results; then
    say "failed: cannot mount the results share (9p tag results)"
    finish
fi
CTL=/results/guest
MOUNTPOINT=$(cat "$CTL/mountpoint")

# The guest sees the host root read-only; writes go to a tmpfs overlay and vanish with it.
ROOTMODE=overlay
mount -t tmpfs -o mode=755 tmpfs /rw
mkdir -p /rw/upper /rw/work
OVL=lowerdir=/mnt/host,upperdir=/rw/upper,workdir=/rw/work
if [ "$FAULT" = no-overlay ] || ! mount -t overlay overlay -o "$OVL" /newroot; then
    note "overlay over the host root failed; using it read-only"
    ROOTMODE=readonly
    mount --bind /mnt/host /newroot
fi

R=/newroot
fsmount() { # fstype dir [options]
    [ "$ROOTMODE" = readonly ] || mkdir -p "$R$2"
    mount -t "$1" ${3:+-o "$3"} "$1" "$R$2" || note "cannot mount $1 on $2"
}
fsmount proc /proc
fsmount sysfs /sys
fsmount devtmpfs /dev
fsmount devpts /dev/pts
fsmount tmpfs /dev/shm mode=1777
# On the overlay, /tmp keeps the host's files (same paths as on the host) and takes writes.
[ "$ROOTMODE" = overlay ] || fsmount tmpfs /tmp mode=1777
fsmount tmpfs /run mode=755
fsmount bpf /sys/fs/bpf mode=700
fsmount tracefs /sys/kernel/tracing
fsmount debugfs /sys/kernel/debug
fsmount cgroup2 /sys/fs/cgroup
mkdir -p "$R$MOUNTPOINT"
if [ -z "$MOUNTPOINT" ] || ! mount --bind /results "$R$MOUNTPOINT"; then
    say "failed: cannot mount the results share at '$MOUNTPOINT' in the guest root"
    finish
fi

# The kernel's module auto-loading runs its helper in this root: send it into the guest root.
echo /bin/hb-modprobe > /proc/sys/kernel/modprobe
while read -r mod; do
    [ -n "$mod" ] || continue
    chroot "$R" /sbin/modprobe "$mod" || note "modprobe $mod failed"
done < /etc/hellobench/preload

hostname hellobench-guest
ip link set lo up

say "ready root=$ROOTMODE kernel=$(uname -r)"

case "$FAULT" in
hang)
    note "fault injected: hang"
    while :; do sleep 3600; done
    ;;
panic)
    note "fault injected: panic"
    echo c > /proc/sysrq-trigger
    ;;
esac

say "start"
chroot "$R" /bin/sh "$MOUNTPOINT/guest/job.sh" < /dev/null
rc=$?
echo "$rc" > "$CTL/status"
dmesg > "$CTL/dmesg.txt"
say "exit=$rc"
finish
"""

# Run by the kernel (usermode helper, in the initramfs root) to auto-load a module.
MODPROBE_HELPER = """#!/bin/sh
exec /bin/chroot /newroot /sbin/modprobe "$@"
"""
