"""`sandbox build-base`: the Docker sandbox's base image."""

from __future__ import annotations

from typing import Optional

import typer

from ..errors import RepairAgentError
from .console import console, fail, log
from .options import PLAIN

sandbox_app = typer.Typer(help="The Docker sandbox.", **PLAIN)


@sandbox_app.command("build-base")
def build_base(force: bool = typer.Option(False, help="Rebuild even if the image exists."),
               mirror: Optional[str] = typer.Option(None, help="Debian mirror (default: apt's)."),
               release: Optional[str] = typer.Option(None, metavar="NAME", help="Debian release: bullseye "
                                                     "(Python 3.9), bookworm (3.11, the default) or trixie (3.13)."),
               tag: Optional[str] = typer.Option(None, help="Image tag (default: repair-agent/base:RELEASE, "
                                                 "-cc with --compiler)."),
               compiler: bool = typer.Option(False, "--compiler", help="Add a C compiler and the Python headers "
                                             "(gcc, libc6-dev, python3-dev), for pins without a wheel.")):
    """Build the sandbox base image (no registry needed).

    debootstrap makes a Debian root file system and `docker import` turns it into the image."""
    from ..sandbox import build_base_image, docker_client
    from ..sandbox.images import tools_image
    from ..sandbox.releases import base_tag

    try:
        built = build_base_image(tag or base_tag(release or "bookworm", compiler), mirror=mirror, force=force, log=log,
                                 release=release, compiler=compiler)
        tools_image(docker_client(), built, log=log)  # the test tools too, while the network is at hand
        console.print(built)
    except RepairAgentError as exc:
        fail(exc)
