"""o²S²PARC: upload inputs, run solver jobs with progress, fetch results and logs.

Example::

    from sparc.client import SparcClient
    from sparc.client.services.o2sparc import O2SparcService, O2SparcSolver

    o2sparc: O2SparcService = SparcClient(connect=False).o2sparc
    solver: O2SparcSolver = o2sparc.get_solver(solver_key="simcore/services/comp/itis/sleeper",
                                               solver_version="2.0.2")
    results = solver.run({"input_1": Path("in.txt"), "input_2": 1, "input_3": False})

Built on the official ``osparc`` client (the ``o2sparc`` extra), imported on first use only.
"""

from sparc.client.services.o2sparc import errors as _errors
from sparc.client.services.o2sparc.errors import *  # noqa: F403  (every name in errors.__all__)
from sparc.client.services.o2sparc.models import Job, JobStatus, Port, SolverInfo
from sparc.client.services.o2sparc.service import O2SparcService
from sparc.client.services.o2sparc.solver import O2SparcSolver

__all__ = ["O2SparcService", "O2SparcSolver", "SolverInfo", "Port", "JobStatus", "Job",
           *_errors.__all__]
