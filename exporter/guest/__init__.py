"""Guest telemetry: an agent inside a VM writes JSON lines to a paravirtual channel
(virtio-serial, vsock or a unix socket); the exporter on the host reads them and
serves every VM's series. ``protocol`` is the wire format both sides share.
"""
