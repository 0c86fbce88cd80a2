"""The Impl base class of the kernel-module impls (impls/kmod-*/controller.py)."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from bench.impl.api import Impl, ImplError, RunningServer, ServerConfig
from bench.impl.registry import Entry
from bench.kmod.build import KmodBuildError, build_module
from bench.kmod.server import ModuleServer


class KernelModuleImpl(Impl):
    """Builds ``module_name``.ko from the impl folder and serves by loading it.

    Subclasses set ``module_name`` (the .c file's stem and the module's name), ``threaded``
    (the module serves from a kernel thread whose id it exports) and ``accounting_note``.
    """

    module_name: ClassVar[str]
    threaded: ClassVar[bool] = False
    accounting_note: ClassVar[str] = ""

    _ko: Path | None = None

    def build_for(self, kernel_release: str) -> Path:
        """The module built against ``kernel_release``'s headers (cached; see bench.kmod.build).

        The host calls this for a guest's kernel before booting it; the guest's prepare()
        then finds the same file in the shared cache instead of building.
        """
        try:
            return build_module(self.manifest.folder, self.module_name, kernel_release).path
        except KmodBuildError as exc:
            raise ImplError(str(exc)) from exc

    def module_options(self) -> dict[str, str | int]:
        """Module parameters fixed by the impl itself (e.g. a variant's options), given to
        insmod after the ServerConfig's; none by default."""
        return {}

    def prepare(self) -> None:
        """Build for the running kernel."""
        self._ko = self.build_for(platform.release())

    def start(self, config: ServerConfig) -> RunningServer:
        if self._ko is None:
            self.prepare()
        assert self._ko is not None
        return ModuleServer(
            self.module_name,
            self._ko,
            config,
            threaded=self.threaded,
            note=self.accounting_note,
            fixed=self.module_options(),
        )


def prebuild(kernel_release: str, entries: Mapping[str, Entry]) -> dict[str, Path]:
    """Build every kernel-module impl of ``entries`` for ``kernel_release`` (e.g. a guest's
    kernel before it boots); returns impl name -> .ko path.  Raises ImplError on failure."""
    built: dict[str, Path] = {}
    for name, entry in entries.items():
        if isinstance(entry.impl, KernelModuleImpl):
            built[name] = entry.impl.build_for(kernel_release)
    return built
