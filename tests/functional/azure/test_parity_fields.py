"""Every field of an Azure node against what upstream Nodepool 11 writes for
the same VM (issue "Parity", items 1-2).

Our launcher launches nodes against the local Azure; the test then reads the
VM, its NIC, its public addresses and the VM size through the ARM REST API
(the raw wire format upstream's own REST client works on) and derives the
node upstream's launcher would write from them, by upstream's rules as
written out below (``upstream_node``).  The raw znode JSON must match it
field by field, and Zuul's view of both records (``zuulview.host_entry``)
must be equal.

Upstream's rules, as read from Nodepool 11.0.0 (``driver/azure/adapter.py``
``AzureInstance`` and ``driver/statemachine.py`` ``updateNodeFromInstance``):

- ``external_id`` is the VM's ``name`` (a string; the VM is named after the
  node's hostname ``np<id>``); ``cloud`` is ``"Azure"``; ``region`` the VM's
  ``location``; ``az`` the first of the VM's ``zones``, else ``""``;
  ``host_id``, ``driver_data`` and ``slot`` stay null, ``node_properties``
  ``{}``.
- addresses: every ipConfiguration of the VM's first NIC gives
  ``private_ipv4`` / a private IPv6 by its ``privateIPAddressVersion``;
  the public addresses its configurations reference give ``public_ipv4`` /
  ``public_ipv6`` by their ``publicIPAddressVersion``.  ``interface_ip``:
  with ``use-internal-ip`` the private IPv4 (else the private IPv6) when
  there is one; otherwise the first of public IPv4, public IPv6, private
  IPv4, private IPv6.
- the image's ``username``, ``python-path`` (default ``auto``),
  ``shell-type`` (null), ``connection-type`` (``ssh``) and
  ``connection-port`` (22 for ssh) are copied, ``connection_port`` also
  into ``ssh_port``; ``image_id`` is the cloud image's name; ``host_keys``
  stay ``[]`` without host-key checking; ``attributes`` is the pool's
  ``node-attributes`` (null when unset).
- ``resources`` as upstream counts a label of that VM size (from the
  resource SKU): ``cores`` = int(``vCPUs``), ``ram`` =
  int(float(``MemoryGB``) * 1024), ``instances`` = 1.
- tags: the VM carries the label ``tags``, the rendered ``dynamic-tags`` and
  ``nodepool_node_id``, ``nodepool_pool_name``, ``nodepool_provider_name``
  (which win).

Deliberate differences are checked as such, not skipped:

- ``hostname``: upstream leaves it null for cloud nodes; the spec
  (zookeeper.md §5) requires ``np<id>`` and the core writes that.  Zuul's
  inventory does not read it.
- ``resources``: upstream's final write replaces the label's cost with the
  instance's, which its create path builds without the SKU, so upstream's
  READY record says ``cores: 0, ram: 0``.  We keep the cost upstream counts
  for the label (what its record holds while building), plus one driver
  extra, ``<VM family>: vCPUs``, which our quota check uses for Azure's
  per-family vCPU quota.
- ``driver_data``: our core keeps its create intent there (crash
  recovery); the Azure driver adds nothing.  Zuul's inventory does not
  read it.
- tags: ours add ``nodepool_installation`` (whose resources they are when
  several installations share a subscription); upstream's rule ignores it.
"""

from __future__ import annotations

import json

import pytest
import requests

from nodepool.zk.installation import installation_id
from tests.functional.azure.conftest import KEY
from tests.functional.azure.helpers import fulfil
from tests.functional.zuulview import host_entry

COMPUTE_API = "2024-07-01"
NETWORK_API = "2024-05-01"
SKU_API = "2021-07-01"

#: keys upstream's Node.toDict writes
UPSTREAM_KEYS = {
    "state", "state_time", "cloud", "provider", "pool", "type",
    "allocated_to", "az", "region", "public_ipv4", "private_ipv4",
    "public_ipv6", "host_id", "interface_ip", "connection_port", "ssh_port",
    "image_id", "launcher", "created_time", "external_id", "hostname",
    "comment", "user_data", "hold_job", "host_keys", "username",
    "connection_type", "shell_type", "hold_expiration", "resources", "slot",
    "attributes", "python_path", "tenant_name", "driver_data", "requestor",
    "node_properties"}
#: bookkeeping the core writes from the request, not from the VM
BOOKKEEPING = ("state", "state_time", "provider", "pool", "type",
               "allocated_to", "launcher", "created_time", "comment",
               "user_data", "hold_job", "hold_expiration", "tenant_name",
               "requestor")

IMAGE_DEFAULTS = {"python-path": "auto", "shell-type": None,
                  "connection-type": "ssh"}
PORT_DEFAULTS = {"ssh": 22, "network_cli": 22, "winrm": 5986}

LABEL_TAGS = {"team": "ci", "cost-center": "42"}
DYNAMIC_TAGS = {"request": "{request.id}", "tenant": "{request.tenant_name}"}


class Arm:
    """Plain ARM REST reads, the wire format upstream's client sees."""

    def __init__(self, local) -> None:
        self.local = local
        token = local.credential().get_token(local.base_url + "/.default")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token.token}"
        self.session.verify = local.ca_path

    def get(self, path: str, api: str, **params) -> dict:
        r = self.session.get(self.local.base_url + path,
                             params={"api-version": api, **params})
        r.raise_for_status()
        return r.json()

    def vm(self, rg: str, name: str) -> dict:
        return self.get(f"/subscriptions/{self.local.subscription_id}/"
                        f"resourceGroups/{rg}/providers/Microsoft.Compute/"
                        f"virtualMachines/{name}", COMPUTE_API)

    def sku(self, name: str, location: str) -> dict | None:
        answer = self.get(f"/subscriptions/{self.local.subscription_id}/"
                          "providers/Microsoft.Compute/skus", SKU_API)
        for sku in answer["value"]:
            if sku.get("resourceType") == "virtualMachines" and \
                    sku["name"] == name and location in sku["locations"]:
                return sku
        return None


def upstream_addresses(arm: Arm, vm: dict) -> dict:
    """Upstream's address rules over the VM's first NIC."""
    nic = arm.get(vm["properties"]["networkProfile"]["networkInterfaces"][0]
                  ["id"], NETWORK_API)
    out = {"private_ipv4": None, "private_ipv6": None,
           "public_ipv4": None, "public_ipv6": None}
    for ipc in nic["properties"]["ipConfigurations"]:
        props = ipc["properties"]
        version = props["privateIPAddressVersion"]
        out[f"private_ip{version[2:].lower()}"] = props["privateIPAddress"]
        ref = props.get("publicIPAddress")
        if ref:
            # Upstream takes the version from the reference and then the
            # address record by its id; this ARM's references carry only
            # the id, so the version is read from the record itself.
            pip = arm.get(ref["id"], NETWORK_API)
            version = (ref.get("properties") or {}).get(
                "publicIPAddressVersion") or \
                pip["properties"]["publicIPAddressVersion"]
            out[f"public_ip{version[2:].lower()}"] = \
                pip["properties"].get("ipAddress")
    return out


def upstream_resources(sku: dict | None) -> dict:
    if sku is None:
        return {"cores": 0, "instances": 1, "ram": 0}
    caps = {c["name"]: c["value"] for c in sku["capabilities"]}
    return {"cores": int(caps["vCPUs"]),
            "ram": int(float(caps["MemoryGB"]) * 1024), "instances": 1}


def upstream_node(arm: Arm, ours: dict, vm: dict, pool: dict, image: dict
                  ) -> dict:
    """The record upstream's launcher writes for ``vm`` (module doc)."""
    addresses = upstream_addresses(arm, vm)
    if pool.get("use-internal-ip") and (addresses["private_ipv4"]
                                        or addresses["private_ipv6"]):
        interface = addresses["private_ipv4"] or addresses["private_ipv6"]
    else:
        interface = (addresses["public_ipv4"] or addresses["public_ipv6"]
                     or addresses["private_ipv4"]
                     or addresses["private_ipv6"])
    image = {**IMAGE_DEFAULTS, **image}
    port = image.get("connection-port",
                     PORT_DEFAULTS.get(image["connection-type"], 22))
    size = vm["properties"]["hardwareProfile"]["vmSize"]
    record = {key: ours.get(key) for key in BOOKKEEPING}
    record.update({
        "external_id": vm["name"], "cloud": "Azure",
        "region": vm["location"],
        "az": vm["zones"][0] if vm.get("zones") else "",
        "host_id": None, "driver_data": None, "slot": None,
        "node_properties": {},
        "public_ipv4": addresses["public_ipv4"],
        "private_ipv4": addresses["private_ipv4"],
        "public_ipv6": addresses["public_ipv6"],
        "interface_ip": interface,
        "username": image["username"], "python_path": image["python-path"],
        "shell_type": image["shell-type"],
        "connection_type": image["connection-type"],
        "connection_port": port, "ssh_port": port,
        "image_id": image["name"], "host_keys": [],
        "attributes": pool.get("node-attributes"),
        "resources": upstream_resources(arm.sku(size, vm["location"])),
        "hostname": None,
    })
    return record


def upstream_vm_tags(node_id: str, rid: str, pool: str) -> dict:
    tags = dict(LABEL_TAGS)
    tags.update({"request": rid, "tenant": "tenant-p"})
    tags.update({"nodepool_node_id": node_id, "nodepool_pool_name": pool,
                 "nodepool_provider_name": "azure"})
    return tags


def _label(azure, name, **extra):
    return azure.label(name, tags=dict(LABEL_TAGS),
                       **{"dynamic-tags": dict(DYNAMIC_TAGS)}, **extra)


#: a VM size whose memory is no whole number of MiB (0.7 GiB = 716.8 MiB)
ODD_SIZE = "Standard_T1_test"

CUSTOM_IMAGE = {"name": "custom", "username": "ci", "key": KEY,
                "python-path": "/usr/bin/python3", "shell-type": "sh",
                "connection-port": 2022,
                "image-reference": {"publisher": "Canonical",
                                    "offer": "ubuntu-24_04-lts",
                                    "sku": "server", "version": "latest"}}


def _pools(azure) -> list[dict]:
    def pool(name, labels, **extra):
        return {"name": name, "max-servers": 5, "host-key-checking": False,
                "labels": labels, **extra}
    return [
        pool("public", [_label(azure, "pub"),
                        _label(azure, "custom", image="custom",
                               size="Standard_D4s_v3")],
             **{"node-attributes": {"executor-zone": "west",
                                    "gpu": False}}),
        pool("private", [_label(azure, "priv", size=ODD_SIZE)],
             **{"public-ipv4": False}),
        pool("internal", [_label(azure, "internal")],
             **{"use-internal-ip": True}),
        pool("dual", [_label(azure, "dual")], **{"public-ipv6": True}),
        pool("v6private", [_label(azure, "v6priv")],
             **{"ipv4": True, "ipv6": True, "public-ipv4": False}),
    ]


CASES = [  # label, pool, image
    ("pub", "public", "ubuntu"),          # (a) public IPv4
    ("custom", "public", "custom"),       # image connection settings
    ("priv", "private", "ubuntu"),        # (b) private IPv4 only
    ("internal", "internal", "ubuntu"),   # use-internal-ip
    ("dual", "dual", "ubuntu"),           # (c) public IPv4 + IPv6
    ("v6priv", "v6private", "ubuntu"),    # (c) private IPv4 + IPv6 only
]


@pytest.fixture
def launch(env, azure):
    """Start our launcher with every case's pool; ``launch(label)`` then
    gets one node of ``label`` and returns (request id, node id, raw JSON).
    """
    # (before any call: the local Azure reads its catalog per request)
    azure.local.catalog.vm_sizes[ODD_SIZE] = (1, 0.7, "standardBSFamily")
    pools = _pools(azure)
    images = [azure.image(), dict(CUSTOM_IMAGE)]
    env.write_config([azure.provider(pools=pools, images=images)])
    env.start_launcher()

    def run(label: str) -> tuple[str, str, dict]:
        rid, req = fulfil(env, [label], tenant="tenant-p")
        node_id = req["nodes"][0]
        data, _ = env.client.get(f"/nodepool/nodes/{node_id}")
        return rid, node_id, json.loads(data)
    run.pools = {p["name"]: p for p in pools}
    run.images = {i["name"]: i for i in images}
    return run


def _differences(ours: dict, expected: dict) -> list[str]:
    return [f"{key}: ours {ours.get(key)!r}, upstream {expected[key]!r}"
            for key in sorted(expected) if ours.get(key) != expected[key]]


@pytest.mark.parametrize("label,pool,image", CASES,
                         ids=[c[0] for c in CASES])
def test_node_fields_match_upstream(launch, env, azure, label, pool, image):
    rid, node_id, ours = launch(label)
    arm = Arm(azure.local)
    vm = arm.vm("nodepool", ours["external_id"])
    expected = upstream_node(arm, ours, vm, launch.pools[pool],
                             launch.images[image])

    assert UPSTREAM_KEYS <= set(ours), UPSTREAM_KEYS - set(ours)
    assert ours["state"] == "ready"
    problems = []

    # The documented difference (module doc), checked exactly.
    sku = arm.sku(vm["properties"]["hardwareProfile"]["vmSize"],
                  vm["location"])
    cost = {**expected["resources"], sku["family"]: int(sku["capabilities"][
        [c["name"] for c in sku["capabilities"]].index("vCPUs")]["value"])}
    if ours["resources"] != cost:
        problems.append(f"resources: ours {ours['resources']!r}, "
                        f"upstream's count plus family {cost!r}")
    compared = {k: v for k, v in expected.items() if k != "resources"}
    problems += _differences(ours, compared)

    # What a job sees is the same.
    upstream_view = dict(expected, resources=ours["resources"])
    ours_view, theirs_view = host_entry(ours), host_entry(upstream_view)
    if ours_view != theirs_view:
        problems.append(f"Zuul view: ours {ours_view!r}, "
                        f"upstream {theirs_view!r}")

    # Both leak rules recognise the VM by its tags.  Upstream's NIC and
    # address are created by the VM and carry no tags; ours are created
    # first and carry the VM's, so either launcher's leak rule can judge
    # them.  The OS disk carries none on either side (it goes with the VM,
    # deleteOption Delete).  Ours add the installation's id (leak cleanup
    # leaves other installations' resources alone).
    want_tags = {**upstream_vm_tags(node_id, rid, pool),
                 "nodepool_installation": installation_id(env.client)}
    if vm["tags"] != want_tags:
        problems.append(f"VM tags: ours {vm['tags']!r}, "
                        f"upstream {want_tags!r}")
    mine = {kind: [r for r in azure.resources(kind)
                   if r["name"].startswith(vm["name"] + "-")]
            for kind in ("networkInterfaces", "publicIPAddresses", "disks")}
    assert len(mine["networkInterfaces"]) == len(mine["disks"]) == 1
    for res in mine["networkInterfaces"] + mine["publicIPAddresses"]:
        if res.get("tags") != want_tags:
            problems.append(f"{res['name']} tags: {res.get('tags')!r}")
    for res in mine["disks"]:
        if res.get("tags"):
            problems.append(f"{res['name']} tags: {res['tags']!r}")
    assert not problems, "\n".join(problems)


def test_parity_cases_cover_every_address_shape(launch):
    # The cases are only worth their names if the local Azure gave each
    # node the addresses the case is about.
    nodes = {label: launch(label)[2] for label, _, _ in CASES}
    assert nodes["pub"]["public_ipv4"] and not nodes["pub"]["public_ipv6"]
    assert nodes["priv"]["public_ipv4"] is None
    assert nodes["priv"]["interface_ip"] == nodes["priv"]["private_ipv4"]
    assert nodes["internal"]["public_ipv4"]
    assert nodes["internal"]["interface_ip"] == \
        nodes["internal"]["private_ipv4"]
    assert nodes["dual"]["public_ipv6"]
    assert nodes["v6priv"]["public_ipv4"] is None
    assert nodes["v6priv"]["public_ipv6"] is None
    assert nodes["custom"]["connection_port"] == 2022
