"""Built-in driver schemas: aws, openstack, azure, static (fake: for tests).

``BUILTIN`` lists them; ``nodepool.config.registry`` starts its table from
it (the schemas never import the registry, so the imports run one way).
Each module holds only schemas and value builders -- no cloud SDK imports --
so validating a config never needs boto3, openstacksdk or the Azure SDK.
"""

from nodepool.config.drivers import aws, azure, fake, openstack, static
from nodepool.config.driverschema import DriverSchema

__all__ = ["BUILTIN"]

BUILTIN: tuple[DriverSchema, ...] = tuple(
    module.DRIVER for module in (aws, azure, fake, openstack, static))
