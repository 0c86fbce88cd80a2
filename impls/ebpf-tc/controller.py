"""Compiles hello_tc.bpf.c (cached) and attaches it to the server interface's ingress:
through a tcx bpf_link where the kernel has tcx (Linux 6.6 or later), held by an hb-bpfctl
process, so that the kernel detaches it when that process dies, however it dies; else
(the ``tc_attach`` option: auto, tcx or netlink) as a direct-action filter on the clsact
ingress (creating clsact when absent), made through netlink, which a killed run leaves
behind for ``bench cleanup``.  Stopping removes it, and the clsact qdisc too when the suite
created it and nothing else is left on it.

With tcx the program runs before any filter of a clsact qdisc on the interface; what it
does not answer it hands on (TC_ACT_UNSPEC: the next program or filter) either way."""

from __future__ import annotations

from typing import cast

from bench.bpf import BpfError
from bench.bpf.control import TC_ATTACH, TcAttach, TcAttachment, addr_value
from bench.bpf.reflector import BpfReflector, ReflectorImpl
from bench.impl.api import Impl, ImplError, RunningServer, ServerConfig
from bench.impl.manifest import Manifest


class EbpfTc(ReflectorImpl):
    source_name = "hello_tc.bpf.c"

    def start(self, config: ServerConfig) -> RunningServer:
        self.prepare()
        rodata = {"hb_port": config.port, "hb_addr": addr_value(config.addr)}
        how = config.options.get("tc_attach", self.manifest.options.get("tc_attach", "auto"))
        if how not in TC_ATTACH:
            raise ImplError(f"tc_attach must be {', '.join(TC_ATTACH)}, not {how!r}")
        try:
            attachment = TcAttachment.attach(
                self.obj,
                "hb_tc_hello",
                config.interface,
                rodata,
                config.netns,
                cast(TcAttach, how),
            )
        except BpfError as exc:
            raise ImplError(f"ebpf-tc on {config.interface}: {exc}") from exc
        return BpfReflector(attachment)


def create(manifest: Manifest) -> Impl:
    return EbpfTc(manifest)
