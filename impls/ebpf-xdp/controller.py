"""Compiles hello_xdp.bpf.c (cached) and attaches it to the server interface; stopping
detaches it.  Generic (skb) mode on lo, native (drv) mode elsewhere, unless the
``xdp_mode`` option says otherwise."""

from __future__ import annotations

from typing import cast

from bench.bpf.control import BpfError, XdpAttachment, XdpMode, addr_value
from bench.bpf.reflector import BpfReflector, ReflectorImpl
from bench.impl.api import Impl, ImplError, RunningServer, ServerConfig
from bench.impl.manifest import Manifest

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
        try:
            attachment = XdpAttachment.attach(
                self.obj, "hb_xdp_hello", config.interface, mode, rodata, config.netns
            )
        except BpfError as exc:
            raise ImplError(f"ebpf-xdp on {config.interface} ({mode}): {exc}") from exc
        return BpfReflector(attachment)


def create(manifest: Manifest) -> Impl:
    return EbpfXdp(manifest)
