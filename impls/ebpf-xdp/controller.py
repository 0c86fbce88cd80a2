"""Compiles hello_xdp.bpf.c (cached) and attaches it to the server interface through a
bpf_link held by an hb-bpfctl process (bench/bpf/control.py): stopping ends that process,
and when it dies any other way (a killed run) the kernel detaches the program all the same.
Generic (skb) mode on lo, native (drv) mode elsewhere, unless the ``xdp_mode`` option says
otherwise.  XDP links need Linux 5.9 or later.

In native mode on a veth end the replies (XDP_TX) go into the peer's NAPI ring, which the
driver kicks only when the peer has an XDP program of its own (GRO on the peer is not
enough for XDP_TX), so a pass-through program (bench/bpf/hb_pass.bpf.c) is attached to the
peer when the topology has one (``ServerConfig.peer``), and removed with the reflector."""

from __future__ import annotations

from typing import cast

from bench.bpf import BpfError
from bench.bpf.build import BPF_DIR, build_bpf_object
from bench.bpf.control import XdpAttachment, XdpMode, addr_value
from bench.bpf.reflector import BpfReflector, ReflectorImpl
from bench.impl.api import Impl, ImplError, RunningServer, ServerConfig
from bench.impl.manifest import Manifest
from bench.native.build import BuildError

HB_F_FULL_CSUM = 0x1  # hb_reflect.h: the reply leaves without skb checksum state


def xdp_mode(config: ServerConfig, default: str) -> XdpMode:
    mode = config.options.get("xdp_mode", default)
    if mode == "auto":
        mode = "skb" if config.interface == "lo" else "drv"
    if mode not in ("skb", "drv"):
        raise ImplError(f"xdp_mode must be skb, drv or auto, not {mode!r}")
    return cast(XdpMode, mode)


class EbpfXdp(ReflectorImpl):
    source_name = "hello_xdp.bpf.c"

    def start(self, config: ServerConfig) -> RunningServer:
        self.prepare()
        mode = xdp_mode(config, self.manifest.options.get("xdp_mode", "auto"))
        rodata = {
            "hb_port": config.port,
            "hb_addr": addr_value(config.addr),
            # native XDP_TX hands the reply on as a frame without checksum state
            "hb_flags": HB_F_FULL_CSUM if mode == "drv" else 0,
        }
        helpers = self._attach_peer(config) if mode == "drv" else ()
        try:
            attachment = XdpAttachment.attach(
                self.obj, "hb_xdp_hello", config.interface, mode, rodata, config.netns
            )
        except BpfError as exc:
            for helper in helpers:
                helper.detach()
            raise ImplError(f"ebpf-xdp on {config.interface} ({mode}): {exc}") from exc
        return BpfReflector(attachment, helpers)

    def _attach_peer(self, config: ServerConfig) -> tuple[XdpAttachment, ...]:
        peer = config.peer
        if peer is None:
            return ()
        try:
            obj = build_bpf_object(BPF_DIR / "hb_pass.bpf.c")
            return (
                XdpAttachment.attach(obj, "hb_xdp_pass", peer.interface, "drv", {}, peer.netns),
            )
        except (BuildError, BpfError) as exc:
            raise ImplError(f"ebpf-xdp: pass-through program on the veth peer: {exc}") from exc


def create(manifest: Manifest) -> Impl:
    return EbpfXdp(manifest)
