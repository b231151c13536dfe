"""moto's server in a process of its own, plus two things EC2 does and
moto does not: terminated instances disappear, and a resource's tags are
found without reading everyone's.

EC2 lists a terminated instance for about an hour, then forgets it; moto
keeps every instance it ever started, and its DescribeInstances walks them
all, so a long run (``tools.soak``: tens of thousands of instances) slows
down for no reason a real cloud would have.  With ``--terminated-ttl S``
a reservation whose instances have all been terminated for S seconds is
removed from moto's EC2 backends, and so are the tags of instances and
volumes that no longer exist (moto keeps those forever too).

moto reads one resource's tags by scanning every tag of the region with
regular expressions, once per resource a describe call returns or filters
on: a tag-filtered DescribeInstances costs instances x all tags, seconds at
a few hundred instances, and every other call waits behind it (the proxy
sends calls to moto one at a time).  ``fast_tags()`` makes that read a
dictionary lookup with the same answer.  And moto's response serializer
works out, for every field of every record it writes, which attribute
names to try on the model object and which response transformer applies
-- the same answers each time for a field of a class -- and then writes
the XML through SAX: ``fast_serializer()`` remembers the answers and
writes the text itself (``motoxml``), the same bytes at half the cost of
an instance record, in every DescribeInstances and RunInstances answer.
Every instance moto starts finds its AMI by
filtering all images: ``fast_image_lookup()`` takes it by id.  And moto
finds an instance by id by walking every instance of the region (once per
instance it starts, to attach its root volume, and once per instance it
terminates, to detach it): at 20 launches a second, with two minutes of
terminated instances kept, that walk was a fifth of moto's time.
``fast_instance_lookup()`` keeps an index per backend, made again when
the number of reservations changes or a prune removed some; a new
instance is looked for in the newest reservation first.

    python -m tools.fakeaws.motochild -H 127.0.0.1 -p 5000 --terminated-ttl 60

Threads: moto's server threads, and one ``moto-prune`` thread that looks
every ``S / 4`` seconds (at least 1 s).  Failure story: a prune that races
a request walking the same reservations is retried at the next look; the
request may see the reservation or not, as on EC2 around the hour.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time

__all__ = ["fast_image_lookup", "fast_instance_lookup", "fast_serializer",
           "fast_tags", "main", "prune_tags", "prune_terminated"]

#: the attribute of a moto EC2 backend holding fast_instance_lookup's index
INDEX = "_fakeaws_instance_index"


def fast_serializer() -> None:
    """Make moto's response serializer cheaper per field (module
    docstring), with the same answers:

    * which attribute names to try follows from the picker, the object's
      class, the field's shape, the structure it sits in and its key:
      worked out once, not for every field of every record;
    * the dotted path of the field is only read to find a response
      transformer (the first whose path the field's path ends with),
      and that answer follows from the path's last few parts: it is
      worked out once per such tail, not by joining the whole path and
      trying every transformer for every field;
    * the XML text of an EC2 answer is written by ``motoxml.unparse``.
    """
    from moto.core import serialize
    from moto.core.utils import MISSING, get_value as read_value

    from tools.fakeaws.motoxml import unparse

    picker_class = serialize.XFormedAttributePicker
    compute = picker_class.get_possible_keys
    slow_get_value = serialize.ResponseSerializer.get_value
    memo: dict = {}

    def possible_keys(picker, context) -> tuple[str, ...]:
        shape = context.shape
        parent = getattr(shape, "parent", None)
        key = (type(picker), type(context.obj), id(shape), id(parent),
               context.key)
        hit = memo.get(key)
        # Shapes are kept with their answer: their ids are never reused.
        if hit is None or hit[0] is not shape or hit[1] is not parent:
            hit = memo[key] = (shape, parent,
                               tuple(compute(picker, context)))
        return hit[2]

    def get_possible_keys(self, context):
        return possible_keys(self, context)

    def transformer(picker, path: list[str], key: str) -> str | None:
        """The first transformer path the field's dotted path ends with
        (``AttributePicker.__call__``'s loop), from the path's tail."""
        table = picker.response_transformers
        version = (id(table), len(table))
        found = tails.get(version)
        if found is None:
            # Moto adds transformers at run time: a new table, new tails.
            depth = 1 + max((t.count(".") for t in table), default=0)
            found = tails[version] = (depth, {})
        depth, known = found
        tail = (*path[-depth:], key)
        if tail not in known:
            # A path ending with ``t`` (``d`` dots) ends with it within
            # its last ``d + 1`` parts: the tail holds at least those.
            joined = ".".join(tail)
            known[tail] = next((t for t in table if joined.endswith(t)),
                               None)
        return known[tail]

    tails: dict = {}

    def get_value(self, value, key, shape):
        picker = self._value_picker
        if type(picker) is not picker_class:
            return slow_get_value(self, value, key, shape)
        context = serialize.AttributePickerContext(obj=value, key=key,
                                                   shape=shape)
        found = None
        for name in possible_keys(picker, context):
            found = read_value(value, name, MISSING)
            if found is not MISSING:
                break
        else:
            found = None
        if picker.response_transformers:
            path = transformer(picker, self.path, key)
            if path is not None:
                found = picker.response_transformers[path](found)
        return found

    slow_body = serialize.EC2Serializer._serialize_body

    def serialize_body(self, body):
        if self.pretty_print:
            return slow_body(self, body)
        return unparse(body)

    picker_class.get_possible_keys = get_possible_keys
    serialize.ResponseSerializer.get_value = get_value
    serialize.EC2Serializer._serialize_body = serialize_body


def fast_image_lookup() -> None:
    """Every instance moto starts looks its AMI up by an ``image-id``
    filter over all images (a thousand and more, matched with fnmatch):
    tens of ms per instance.  An exact id is a dictionary lookup."""
    from moto.ec2.models.amis import AmiBackend

    scan = AmiBackend.describe_images

    def describe_images(self, ami_ids=None, filters=None, exec_users=None,
                        owners=None):
        wanted = (filters or {}).get("image-id")
        if (isinstance(wanted, str) and list(filters) == ["image-id"]
                and not (ami_ids or exec_users or owners)
                and not any(c in wanted for c in "*?[")):
            ami = self.amis.get(wanted)
            return [ami] if ami is not None else []
        return scan(self, ami_ids=ami_ids, filters=filters,
                    exec_users=exec_users, owners=owners)
    AmiBackend.describe_images = describe_images


def fast_instance_lookup() -> None:
    """Make moto's ``get_instance`` and ``get_instance_by_id`` a lookup
    with the same answers (module docstring)."""
    from moto.ec2.exceptions import InvalidInstanceIdError
    from moto.ec2.models.instances import InstanceBackend

    def find(self, instance_id: str):
        reservations = self.reservations
        index = self.__dict__.get(INDEX)
        if index is None or index[0] != len(reservations):
            index = (len(reservations), {
                i.id: i for r in list(reservations.values())
                for i in r.instances})
            self.__dict__[INDEX] = index
        found = index[1].get(instance_id)
        if found is None and reservations:
            # One being started now: its reservation is the newest.
            newest = next(reversed(reservations.values()))
            for instance in newest.instances:
                index[1][instance.id] = instance
            found = index[1].get(instance_id)
        return found

    def get_instance(self, instance_id: str):
        found = find(self, instance_id)
        if found is None:
            raise InvalidInstanceIdError(instance_id)
        return found

    def get_instance_by_id(self, instance_id: str):
        return find(self, instance_id)

    InstanceBackend.get_instance = get_instance
    InstanceBackend.get_instance_by_id = get_instance_by_id


def fast_tags() -> None:
    """Make moto's per-resource tag read a lookup (module docstring)."""
    from moto.ec2.models.core import TaggedEC2Resource
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    def get_tags(self) -> list[dict[str, str]]:
        resource_id = self.id
        tags = self.ec2_backend.tags.get(resource_id) if resource_id \
            else None
        if not tags:
            return []
        kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
        return [{"resource_id": resource_id, "key": key, "value": value,
                 "resource_type": kind} for key, value in tags.items()]
    TaggedEC2Resource.get_tags = get_tags


def prune_tags(backend) -> int:
    """Drop the tags of instances and volumes ``backend`` no longer has;
    return how many resources' tags went."""
    instances = {i.id for r in list(backend.reservations.values())
                 for i in r.instances}
    gone = [rid for rid in list(backend.tags)
            if (rid.startswith("i-") and rid not in instances)
            or (rid.startswith("vol-") and rid not in backend.volumes)]
    for rid in gone:
        backend.tags.pop(rid, None)
    return len(gone)


def prune_terminated(backends, seen: dict[str, float], ttl: float,
                     now: float) -> int:
    """Remove reservations terminated for ``ttl`` seconds; return how many.

    ``seen`` maps a reservation id to when it was first seen with every
    instance terminated (moto records no termination time)."""
    removed = 0
    for regions in list(backends.values()):
        for backend in list(regions.values()):
            reservations = backend.reservations
            for rid, reservation in list(reservations.items()):
                if not all(i._state.name == "terminated"
                           for i in reservation.instances):
                    seen.pop(rid, None)
                    continue
                first = seen.setdefault(rid, now)
                if now - first >= ttl:
                    reservations.pop(rid, None)
                    seen.pop(rid, None)
                    removed += 1
            if removed:
                backend.__dict__.pop(INDEX, None)
                prune_tags(backend)
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.fakeaws.motochild")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--terminated-ttl", type=float, default=None)
    args = parser.parse_args(argv)
    from moto.ec2.models import ec2_backends
    from moto.server import ThreadedMotoServer
    fast_tags()
    fast_serializer()
    fast_image_lookup()
    fast_instance_lookup()
    server = ThreadedMotoServer(ip_address=args.host, port=args.port,
                                verbose=False)
    server.start()
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    if args.terminated_ttl is not None:
        seen: dict[str, float] = {}
        interval = max(1.0, args.terminated_ttl / 4)

        def prune() -> None:
            while not done.wait(interval):
                try:
                    prune_terminated(ec2_backends, seen, args.terminated_ttl,
                                     time.monotonic())
                except RuntimeError:     # a dict changed under us: later
                    pass
        threading.Thread(target=prune, name="moto-prune", daemon=True).start()
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
