"""Launch and delete through the real launcher: SDK → HTTPS → LocalAzure."""

from __future__ import annotations

import base64

from tests.functional.azure.conftest import KEY, LOCATION
from tests.functional.azure.helpers import fulfil, release_all, wait_gone
from tests.functional.hostkeys import upstream_keys


def test_launch_and_delete_cascades(env, azure):
    env.write_config([azure.provider()])
    env.start_launcher()
    rid, req = fulfil(env, ["small"], tenant="tenant-a")
    node_id = req["nodes"][0]
    node = env.zuul.get_node(node_id)
    vm_name = f"np{node_id}"
    assert node["state"] == "ready"
    assert (node["provider"], node["pool"]) == ("azure", "main")
    assert (node["cloud"], node["region"]) == ("Azure", LOCATION)
    assert node["hostname"] is None      # as upstream (the VM: np<id>)
    assert node["external_id"] == vm_name
    assert node["public_ipv4"] == "127.0.0.1"
    assert node["private_ipv4"].startswith("10.0.")
    assert node["interface_ip"] == node["public_ipv4"]
    assert node["host_keys"] == []
    assert (node["username"], node["connection_type"]) == ("zuul", "ssh")
    assert node["connection_port"] == node["ssh_port"] == 22
    assert node["resources"] == {"instances": 1, "cores": 2, "ram": 4096,
                                 "standardBSFamily": 2}
    [vm] = azure.resources("virtualMachines")
    props = vm["properties"]
    assert vm["name"] == vm_name
    assert props["provisioningState"] == "Succeeded"
    assert props["hardwareProfile"]["vmSize"] == "Standard_B2s"
    assert props["osProfile"]["computerName"] == vm_name
    assert props["storageProfile"]["imageReference"]["offer"] == \
        "ubuntu-24_04-lts"
    assert props["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"] \
        == [{"path": "/home/zuul/.ssh/authorized_keys", "keyData": KEY}]
    assert azure.names("networkInterfaces") == {f"{vm_name}-nic"}
    assert azure.names("publicIPAddresses") == {f"{vm_name}-pip4"}
    assert azure.names("disks") == {f"{vm_name}-disk"}
    for kind in ("networkInterfaces", "publicIPAddresses"):
        [res] = azure.resources(kind)
        assert res["tags"]["nodepool_node_id"] == node_id

    release_all(env, rid)
    for kind in ("virtualMachines", "networkInterfaces", "publicIPAddresses",
                 "disks"):
        wait_gone(azure, kind, azure.names(kind))
    # One DELETE (the VM's) took everything: NIC, address and disk went
    # by deleteOption, not by calls of their own.
    assert azure.calls("DELETE") == 1
    assert azure.calls("virtualMachines/{vmName}") >= 1


def test_public_private_and_internal_ip(env, azure):
    pools = [
        {"name": "public", "max-servers": 5, "host-key-checking": False,
         "labels": [azure.label("pub")]},
        {"name": "private", "max-servers": 5, "host-key-checking": False,
         "public-ipv4": False, "labels": [azure.label("priv")]},
        {"name": "internal", "max-servers": 5, "host-key-checking": False,
         "use-internal-ip": True, "labels": [azure.label("internal")]},
        {"name": "dual", "max-servers": 5, "host-key-checking": False,
         "public-ipv6": True, "labels": [azure.label("dual")]},
    ]
    env.write_config([azure.provider(pools=pools)])
    env.start_launcher()
    _, req = fulfil(env, ["pub"])
    node = env.zuul.get_node(req["nodes"][0])
    assert node["public_ipv4"] == "127.0.0.1" and node["private_ipv4"]
    assert node["interface_ip"] == node["public_ipv4"]
    _, req = fulfil(env, ["priv"])
    private = env.zuul.get_node(req["nodes"][0])
    assert private["public_ipv4"] is None
    assert private["interface_ip"] == private["private_ipv4"]
    # No address was even created for the private node.
    assert f"np{req['nodes'][0]}-pip4" not in \
        azure.names("publicIPAddresses")
    [nic] = [n for n in azure.resources("networkInterfaces")
             if n["name"] == f"np{req['nodes'][0]}-nic"]
    [ipc] = nic["properties"]["ipConfigurations"]
    assert "publicIPAddress" not in ipc["properties"]
    _, req = fulfil(env, ["internal"])
    internal = env.zuul.get_node(req["nodes"][0])
    assert internal["public_ipv4"] == "127.0.0.1"
    assert internal["interface_ip"] == internal["private_ipv4"]
    _, req = fulfil(env, ["dual"])
    dual = env.zuul.get_node(req["nodes"][0])
    assert dual["public_ipv4"] == "127.0.0.1"
    assert dual["public_ipv6"].startswith("2001:db8:")
    [nic] = [n for n in azure.resources("networkInterfaces")
             if n["name"] == f"np{req['nodes'][0]}-nic"]
    versions = [c["properties"]["privateIPAddressVersion"]
                for c in nic["properties"]["ipConfigurations"]]
    assert versions == ["IPv4", "IPv6"]


def test_launch_options_reach_the_vm(env, azure):
    label = azure.label(
        tags={"team": "ci", "cost": 42,
              "nodepool_node_id": "overridden-by-ours"},
        **{"dynamic-tags": {"req": "{request.id}",
                            "tenant": "{request.tenant_name}",
                            "bad": "{request.nope}"},
           "user-data": "#!/bin/sh\necho user\n",
           "custom-data": "#cloud-config\nhostname: x\n",
           "volume-size": 64})
    images = [azure.image(password="S3cret-pass!", key=None)]
    del images[0]["key"]
    env.write_config([azure.provider(labels=[label], images=images)])
    env.start_launcher()
    rid, req = fulfil(env, ["small"], tenant="tenant-t")
    node_id = req["nodes"][0]
    [vm] = azure.resources("virtualMachines")
    props = vm["properties"]
    assert vm["tags"]["team"] == "ci" and vm["tags"]["cost"] == "42"
    assert vm["tags"]["nodepool_node_id"] == node_id
    assert vm["tags"]["nodepool_provider_name"] == "azure"
    assert vm["tags"]["nodepool_pool_name"] == "main"
    assert vm["tags"]["req"] == rid
    assert vm["tags"]["tenant"] == "tenant-t"
    assert "bad" not in vm["tags"]
    assert base64.b64decode(props["userData"]) == b"#!/bin/sh\necho user\n"
    assert base64.b64decode(props["osProfile"]["customData"]) == \
        b"#cloud-config\nhostname: x\n"
    assert props["storageProfile"]["osDisk"]["diskSizeGB"] == 64
    assert props["storageProfile"]["osDisk"]["deleteOption"] == "Delete"
    assert props["osProfile"]["adminPassword"] == "S3cret-pass!"
    linux = props["osProfile"]["linuxConfiguration"]
    assert linux["disablePasswordAuthentication"] is False
    assert "ssh" not in linux
    [disk] = azure.resources("disks")
    assert disk["properties"]["diskSizeGB"] == 64


def test_generated_password_and_key(env, azure):
    images = [azure.image(**{"generate-password": True})]
    env.write_config([azure.provider(images=images)])
    env.start_launcher()
    fulfil(env, ["small"])
    fulfil(env, ["small"])
    passwords = [vm["properties"]["osProfile"]["adminPassword"]
                 for vm in azure.resources("virtualMachines")]
    assert len(set(passwords)) == 2          # one per VM
    assert all(len(p) >= 12 for p in passwords)
    for vm in azure.resources("virtualMachines"):
        linux = vm["properties"]["osProfile"]["linuxConfiguration"]
        assert linux["ssh"]["publicKeys"][0]["keyData"] == KEY
        assert linux["disablePasswordAuthentication"] is False


def test_host_key_checking_scans_the_public_address(env, azure, sshd):
    # Every public IP of this LocalAzure is 127.0.0.1, where sshd listens.
    images = [azure.image(**{"connection-port": sshd.port})]
    pools = [{"name": "main", "max-servers": 2, "labels": [azure.label()]}]
    env.write_config([azure.provider(images=images, pools=pools)])
    env.start_launcher()
    _, req = fulfil(env, ["small"])
    node = env.zuul.get_node(req["nodes"][0])
    assert node["connection_port"] == sshd.port
    assert node["host_keys"] == upstream_keys(sshd)
