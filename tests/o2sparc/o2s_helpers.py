"""Names shared by the o²S²PARC client tests (fixtures live in conftest.py)."""

SLEEPER = "simcore/services/comp/itis/sleeper"
CSV_STATS = "simcore/services/comp/sparc/csv-stats"
