"""Tenancy and provisioning: organisations, members, plans and quotas, instances, topics,
consumer groups, credentials, ACL rules, audit log, and the REST API over all of it."""
