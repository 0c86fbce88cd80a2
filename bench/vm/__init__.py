"""The vm environment: run ``python -m bench`` in a disposable QEMU guest with a stock kernel.

- ``kernel.find_guest_kernel``   the kernel to boot (with modules and headers);
- ``initramfs.build_initramfs``  busybox, virtio/9p modules and /init, cached;
- ``qemu.detect_accel``          kvm when it really works, else tcg;
- ``guest.run_in_guest``         boot, run a command, collect status/console/dmesg;
- ``environment.run_bench_in_vm`` ``python -m bench run`` inside a guest.
"""
