"""gRPC front-end workers and the relay that connects them to the node's core.

A node can serve its gRPC port from several processes (``--grpc-workers N``): each worker runs
grpc.aio and relays every call, as bytes, to the one core process that owns the store and the
delivery engine (docs/grpc-endpoint.md, "Front-end workers"). This is the split of Apache
RocketMQ 5.x's proxy and broker, inside one node: HTTP/2 and gRPC framing, which cost more CPU
than the broker's own work, run beside the core instead of under its GIL.
"""
