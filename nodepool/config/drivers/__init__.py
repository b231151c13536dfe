"""Built-in driver schemas: aws, openstack, azure, static (fake: for tests).

Importing this package registers them with ``nodepool.config.registry``.
Each module holds only schemas and value builders -- no cloud SDK imports --
so validating a config never needs boto3, openstacksdk or the Azure SDK.
"""

from nodepool.config.drivers import aws, azure, fake, openstack, static
from nodepool.config.registry import register

for _module in (aws, azure, fake, openstack, static):
    register(_module.DRIVER)
