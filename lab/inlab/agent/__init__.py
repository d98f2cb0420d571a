"""The fault agent beside each lab host, and the client that steers it. Standard library only.

``python3 -m lab.inlab.agent`` (:mod:`~lab.inlab.agent.__main__`) starts it. Inside:

``service``    the :class:`~lab.inlab.agent.service.Agent`: every op, on injectable runner, /proc and clock
``api``        :class:`~lab.inlab.agent.api.AgentApiServer`, the JSON-lines API on ``AGENT_PORT``
``requests``   decoding a request's fields; ``BadRequest`` and ``OpFailed``
``commands``   running iptables, ``ip route`` and tcpdump with deadlines
``iptables``   the rules a block request needs, and their counters
``procfs``     the lab's processes and the kernel's TCP counters, from ``/proc``
``tcpdump``    the capture filter grammar and one running tcpdump
``log``        one JSON event per line on stdout
``client``     :class:`~lab.inlab.agent.client.AgentClient`, what a scenario uses
"""
