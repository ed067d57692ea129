"""``ZincHelper``: the guide's Zinc entry point, usable without a ``SparcClient``.

It is the same engine as ``SparcClient().zinc`` (:class:`~sparc.client.services.zinc.ZincService`)
and reads the same configuration (optional config file, then ``PENNSIEVE_API_HOST`` & co. from
the environment). Example (the tutorial's calls)::

    from sparc.client.zinchelper import ZincHelper

    zinc = ZincHelper()
    zinc.get_scaffold_vtk(292, "scaffold.vtk")
    zinc.get_mbf_vtk(107, "10991_20180817_143553.xml", "mbf_vtk.vtk")
    zinc.analyse("segmentation.xml", ["stomach", "esophagus"], "Mice")
    zinc.export(292, format="glb", output="meshes/")

Needs the ``zinc`` extra: ``pip install 'sparc.client[zinc]'``.
"""

from __future__ import annotations

import os

from sparc.client.config import Config
from sparc.client.services.zinc import ZincService

__all__ = ["ZincHelper"]


class ZincHelper(ZincService):
    """A standalone :class:`ZincService` (own connection pool; close it, or use ``with``).

    Parameters:
        config_file: optional INI config file (see :class:`~sparc.client.config.Config`).
        profile: profile of that file to use.
    """

    def __init__(self, config_file: str | os.PathLike[str] | None = None,
                 profile: str | None = None) -> None:
        super().__init__(config=Config.load(config_file, profile=profile))
