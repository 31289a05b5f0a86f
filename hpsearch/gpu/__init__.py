"""GPU readings (through GPUtil) and the planning of runs onto GPUs."""

from hpsearch.gpu.allocate import Reservation, plan_slots
from hpsearch.gpu.monitor import GpuMonitor, GpuReading, GpuSnapshot, query_gpus
from hpsearch.gpu.planner import SlotLimits, SlotPlanner

__all__ = [
    "GpuMonitor",
    "GpuReading",
    "GpuSnapshot",
    "Reservation",
    "SlotLimits",
    "SlotPlanner",
    "plan_slots",
    "query_gpus",
]
