"""Eight MD5 streams at once (AVX2): see ``_md5lanes.c``."""

from collections.abc import Sequence

from typing_extensions import Buffer

def available() -> bool: ...
def update(states: Buffer, blocks: Sequence[Buffer], /) -> None: ...
