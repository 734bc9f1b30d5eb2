"""``kairos serve``: a P/D-disaggregated, OpenAI-compatible server driven by the core policies.

Processes: one proxy (HTTP edge, global prefill queue, placement; ``proxy``, ``api``) and one
worker per prefill and decode instance (``workers``), talking typed messages (``messages``)
over Unix sockets. Never imports ``kairos.sim``: both runtimes share only ``kairos.core``.
"""
