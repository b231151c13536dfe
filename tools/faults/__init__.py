"""The fault suite (issue 8): kill, restart and break things mid-burst.

    python -m tools.faults [--rounds 20] [--requests 100] [--quick] [--seed N]
                           [--zk-rounds 3] [--ensemble-rounds 3]
                           [--fault-rounds 3] [--only SCENARIO]

Scenarios, each a series of rounds on one ZooKeeper (mutual TLS; the
ensemble scenario: three plain-TCP servers of one quorum, started for its
rounds only) and one local AWS (RunInstances 0.5 s, no EC2 buckets), a
fresh launcher process per round (see ``harness``):

- ``kill9``: SIGKILL the launcher at a random moment of the burst and
  start a new one with the same config at once;
- ``zk-restart``: stop ZooKeeper for ~2 s during the burst, start it again;
- ``ensemble``: kill -9 one server of a 3-server ensemble during the burst
  (the leader or a random member); the quorum of two carries on, and the
  member is restarted after the round;
- ``cloud-errors``: InternalError on a fraction of RunInstances and
  TerminateInstances calls, and InsufficientInstanceCapacity on calls into
  one of the two zones (pools) serving the label: its offering is marked
  unavailable and the other pool serves.

It prints one table (requests fulfilled / lost, instances leaked and
duplicated, nodes allocated twice, nodes left, seconds to recover) and
exits 1 if any round lost a request, leaked or duplicated an instance or
handed a node out twice.  Nodes still in ZooKeeper after the bounded wait
are shown but do not fail the run (see ``harness.RoundResult.bad``).
"""
