"""Code that runs inside the lab's client container and fault agents. Standard library only.

The scenario runner, its scenarios' vocabulary (scenario, subjects, workloads, faults), the workload
driver, the in-lab side of submissions, the healthcheck, the Toxiproxy client and the fault agent.
"""
