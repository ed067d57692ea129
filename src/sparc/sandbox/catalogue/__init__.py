"""The sandbox's seeded catalogue (``catalogue.json.gz``, built by ``python -m sparc.sandbox.catalogue.build``)."""

from pathlib import Path

CATALOGUE_PATH = Path(__file__).resolve().parent / "catalogue.json.gz"
