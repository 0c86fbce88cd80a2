"""Compiles hello_tc.bpf.c (cached) and attaches it as a direct-action filter on the server
interface's clsact ingress (creating clsact when absent); stopping removes the filter, and the
clsact qdisc too when the suite created it and nothing else is left on it."""

from __future__ import annotations

from bench.bpf import BpfError
from bench.bpf.control import TcAttachment, addr_value
from bench.bpf.reflector import BpfReflector, ReflectorImpl
from bench.impl.api import Impl, ImplError, RunningServer, ServerConfig
from bench.impl.manifest import Manifest


class EbpfTc(ReflectorImpl):
    source_name = "hello_tc.bpf.c"

    def start(self, config: ServerConfig) -> RunningServer:
        self.prepare()
        rodata = {"hb_port": config.port, "hb_addr": addr_value(config.addr)}
        try:
            attachment = TcAttachment.attach(
                self.obj, "hb_tc_hello", config.interface, rodata, config.netns
            )
        except BpfError as exc:
            raise ImplError(f"ebpf-tc on {config.interface}: {exc}") from exc
        return BpfReflector(attachment)


def create(manifest: Manifest) -> Impl:
    return EbpfTc(manifest)
