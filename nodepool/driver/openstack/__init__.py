"""The OpenStack driver (``driver: openstack``, the default), on openstacksdk.

Modules, one mechanism each: ``api`` (connection, rate limits, error
classification via ``errors``), ``inventory`` (cached flavors, images,
networks, zones), ``params`` (the create request), ``create`` and
``delete`` (the state machines and their calls), ``poller`` (one server
list for every server in flight), ``servers`` (records to ``Instance``),
``quota`` (limits and label cost), ``leaks`` (ports and floating IPs) and
``adapter``, which wires them together.
"""
