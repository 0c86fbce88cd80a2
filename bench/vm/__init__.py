"""The vm environment: run ``python -m bench`` in a disposable QEMU guest with a stock kernel.

- ``kernel.find_guest_kernel``    the kernel to boot (newest Debian stock kernel with its
  modules and, when installed, headers); ``kernel.boot_image`` its PVH-bootable vmlinux;
- ``initramfs.build_initramfs``   static busybox, the virtio/9p/overlay modules and /init
  (``init_script``), cached by content under the build cache's ``vm/`` folder;
- ``qemu.detect_accel``           kvm only when vmx/svm, /dev/kvm and a test boot all work;
- ``guest.run_in_guest``          boot, run one command, collect status, console and dmesg;
- ``bench_run.run_bench_in_vm``  ``python -m bench run`` inside a guest;
- ``cleanup``                     the ledger cleaner for guests left by dead runs.

Inside the guest the host's / is the root, read-only underneath a tmpfs overlay (writes,
/tmp and ~/.cache included, land in guest memory and vanish), with fresh proc, sys, dev,
/dev/shm, /run, bpffs, tracefs, debugfs and cgroup2 mounts, lo up, veth/sch_ingress/cls_bpf
loaded, and module auto-loading routed to the shared /lib/modules.  The work folder is the
one writable host path, at the same path as on the host.  Guests run with ``HELLOBENCH_GUEST=1``.
"""
