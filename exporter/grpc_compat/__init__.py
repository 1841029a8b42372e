"""ServiceRadar compatibility: ``monitoring.AgentService`` as its sysmon-vm checker speaks it.

A ServiceRadar agent polls this process exactly as it polls the Go sysmon-vm
checker (shipped in releases v1.0.53 to v1.0.61; v1.0.62 and later ship
sysmon-osx instead), over the AgentService checker protocol that releases
v1.0.53 to v1.0.78 speak: ``grpc.health.v1.Health/Check("")``,
then ``GetStatus`` twice (or ``GetResults`` when the poller has
``results_interval``). Every answer comes from the sampler's latest snapshot;
nothing is read or measured on the request path.

- ``monitoring.proto``: the wire contract; ``_generated/`` holds the stubs
  (``make proto`` regenerates them; a test checks they match).
- ``payload``: Snapshot -> the JSON document in ``message`` / ``data``.
- ``server``: the servicer, the health service and the listener.
- ``tls``: mTLS (TLS 1.3 only, client certificate required).

And ``monitoring.AgentGatewayService`` as ServiceRadar's agent pushes to it
(v1.0.81 and later), with ``--serviceradar.gateway``:

- ``gateway.proto``: that contract (stubs in ``_generated/`` too).
- ``status``: two snapshots -> the sysmon ``status`` sample the core ingests.
- ``gateway``: the channel (TLS 1.3 through Python's ssl), chunks, SysmonConfig.
- ``push``: Hello, GetConfig, the heartbeat loop, back-off and the sample buffer.
- ``identity``: agent id and partition from the client certificate's CN.
"""
