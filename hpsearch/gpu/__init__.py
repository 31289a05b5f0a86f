"""GPU readings (through GPUtil) and the planning of runs onto GPUs."""

from hpsearch.gpu.allocate import Reservation, plan_slots
from hpsearch.gpu.monitor import GpuMonitor, GpuReading, gpus_available, query_gpus

__all__ = ["GpuMonitor", "GpuReading", "Reservation", "gpus_available", "plan_slots", "query_gpus"]
