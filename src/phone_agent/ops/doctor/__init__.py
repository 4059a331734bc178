"""`phone-agent doctor`: the operator's checklist as software.

One small module per group of checks (``providers``, ``services``, ``tls``, ``host``); each check
returns pass / warn / fail with a detail line and how to fix it, under its own timeout.
"""

from phone_agent.ops.doctor.model import Check, DoctorContext, Outcome, Thresholds
from phone_agent.ops.doctor.runner import Report, StatusReportCache, render_text, run_doctor

__all__ = [
    "Check",
    "DoctorContext",
    "Outcome",
    "Report",
    "Thresholds",
    "render_text",
    "StatusReportCache",
    "run_doctor",
]
