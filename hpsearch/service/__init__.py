"""The per-user search service: one process that shares this machine's GPUs among searches.

Also the registry every driver writes to, so that ``hpsearch status`` and
``hpsearch list`` work from any terminal, with or without the service.
"""
