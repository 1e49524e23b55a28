"""List+watch caches of Kubernetes objects, shared by the webhook and the controller.

A `Reflector` keeps a `Store` of one resource in step with the API server (list,
watch, relist) in a thread of its own and tells a handler what changed; readers
look objects up in the store without an API call. Only the fields a `Resource`
keeps are stored.
"""

from kubecache.reflectors import Change, Reflector, Resource, Store

__all__ = ["Change", "Reflector", "Resource", "Store"]
