"""The policy engine: pure functions from health and intent to the weight table.

Imports nothing else of the project; no I/O, no clock reads.
"""

from policies import pieces
from policies.evaluate import Decision, Evaluation, evaluate, evaluating
from policies.guardrails import Admission, Refusal, admit
from policies.health import Health, State, TargetHealth
from policies.model import Bounds, Estate, Guardrails, Policy, Redistribute, Service, Vip
from policies.overrides import Kind, Override, active
from policies.safety import Check, UnsafePlan
from policies.steps import Steps, collector_paused, stepped, to_end
from policies.table import EMPTY, Cell, Out, Row, WeightTable

__all__ = [
    "EMPTY",
    "Admission",
    "Bounds",
    "Cell",
    "Check",
    "Decision",
    "Estate",
    "Evaluation",
    "Guardrails",
    "Health",
    "Kind",
    "Out",
    "Override",
    "Policy",
    "Redistribute",
    "Refusal",
    "Row",
    "Service",
    "State",
    "Steps",
    "TargetHealth",
    "UnsafePlan",
    "Vip",
    "WeightTable",
    "active",
    "admit",
    "collector_paused",
    "evaluate",
    "evaluating",
    "pieces",
    "stepped",
    "to_end",
]
