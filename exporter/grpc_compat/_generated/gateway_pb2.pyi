from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentHelloRequest(_message.Message):
    __slots__ = ("agent_id", "version", "capabilities", "hostname", "os", "arch", "partition", "config_version", "labels", "config_source")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SOURCE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    version: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    hostname: str
    os: str
    arch: str
    partition: str
    config_version: str
    labels: _containers.ScalarMap[str, str]
    config_source: str
    def __init__(self, agent_id: _Optional[str] = ..., version: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., hostname: _Optional[str] = ..., os: _Optional[str] = ..., arch: _Optional[str] = ..., partition: _Optional[str] = ..., config_version: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., config_source: _Optional[str] = ...) -> None: ...

class AgentHelloResponse(_message.Message):
    __slots__ = ("accepted", "agent_id", "message", "gateway_id", "server_time", "heartbeat_interval_sec", "config_outdated")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SEC_FIELD_NUMBER: _ClassVar[int]
    CONFIG_OUTDATED_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    agent_id: str
    message: str
    gateway_id: str
    server_time: int
    heartbeat_interval_sec: int
    config_outdated: bool
    def __init__(self, accepted: _Optional[bool] = ..., agent_id: _Optional[str] = ..., message: _Optional[str] = ..., gateway_id: _Optional[str] = ..., server_time: _Optional[int] = ..., heartbeat_interval_sec: _Optional[int] = ..., config_outdated: _Optional[bool] = ...) -> None: ...

class AgentConfigRequest(_message.Message):
    __slots__ = ("agent_id", "config_version")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    config_version: str
    def __init__(self, agent_id: _Optional[str] = ..., config_version: _Optional[str] = ...) -> None: ...

class AgentCheckConfig(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SNMPConfig(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PluginConfig(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SysmonConfig(_message.Message):
    __slots__ = ("enabled", "sample_interval", "collect_cpu", "collect_memory", "collect_disk", "collect_network", "collect_processes", "disk_paths", "thresholds", "profile_id", "profile_name", "config_source", "disk_exclude_paths")
    class ThresholdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    COLLECT_CPU_FIELD_NUMBER: _ClassVar[int]
    COLLECT_MEMORY_FIELD_NUMBER: _ClassVar[int]
    COLLECT_DISK_FIELD_NUMBER: _ClassVar[int]
    COLLECT_NETWORK_FIELD_NUMBER: _ClassVar[int]
    COLLECT_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    DISK_PATHS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SOURCE_FIELD_NUMBER: _ClassVar[int]
    DISK_EXCLUDE_PATHS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    sample_interval: str
    collect_cpu: bool
    collect_memory: bool
    collect_disk: bool
    collect_network: bool
    collect_processes: bool
    disk_paths: _containers.RepeatedScalarFieldContainer[str]
    thresholds: _containers.ScalarMap[str, str]
    profile_id: str
    profile_name: str
    config_source: str
    disk_exclude_paths: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, enabled: _Optional[bool] = ..., sample_interval: _Optional[str] = ..., collect_cpu: _Optional[bool] = ..., collect_memory: _Optional[bool] = ..., collect_disk: _Optional[bool] = ..., collect_network: _Optional[bool] = ..., collect_processes: _Optional[bool] = ..., disk_paths: _Optional[_Iterable[str]] = ..., thresholds: _Optional[_Mapping[str, str]] = ..., profile_id: _Optional[str] = ..., profile_name: _Optional[str] = ..., config_source: _Optional[str] = ..., disk_exclude_paths: _Optional[_Iterable[str]] = ...) -> None: ...

class AgentConfigResponse(_message.Message):
    __slots__ = ("not_modified", "config_version", "config_timestamp", "heartbeat_interval_sec", "config_poll_interval_sec", "checks", "config_json", "sysmon_config", "snmp_config", "plugin_config")
    NOT_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SEC_FIELD_NUMBER: _ClassVar[int]
    CONFIG_POLL_INTERVAL_SEC_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    SYSMON_CONFIG_FIELD_NUMBER: _ClassVar[int]
    SNMP_CONFIG_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_CONFIG_FIELD_NUMBER: _ClassVar[int]
    not_modified: bool
    config_version: str
    config_timestamp: int
    heartbeat_interval_sec: int
    config_poll_interval_sec: int
    checks: _containers.RepeatedCompositeFieldContainer[AgentCheckConfig]
    config_json: bytes
    sysmon_config: SysmonConfig
    snmp_config: SNMPConfig
    plugin_config: PluginConfig
    def __init__(self, not_modified: _Optional[bool] = ..., config_version: _Optional[str] = ..., config_timestamp: _Optional[int] = ..., heartbeat_interval_sec: _Optional[int] = ..., config_poll_interval_sec: _Optional[int] = ..., checks: _Optional[_Iterable[_Union[AgentCheckConfig, _Mapping]]] = ..., config_json: _Optional[bytes] = ..., sysmon_config: _Optional[_Union[SysmonConfig, _Mapping]] = ..., snmp_config: _Optional[_Union[SNMPConfig, _Mapping]] = ..., plugin_config: _Optional[_Union[PluginConfig, _Mapping]] = ...) -> None: ...

class GatewayServiceStatus(_message.Message):
    __slots__ = ("service_name", "available", "message", "service_type", "response_time", "agent_id", "gateway_id", "partition", "source", "kv_store_id")
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TIME_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    KV_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    service_name: str
    available: bool
    message: bytes
    service_type: str
    response_time: int
    agent_id: str
    gateway_id: str
    partition: str
    source: str
    kv_store_id: str
    def __init__(self, service_name: _Optional[str] = ..., available: _Optional[bool] = ..., message: _Optional[bytes] = ..., service_type: _Optional[str] = ..., response_time: _Optional[int] = ..., agent_id: _Optional[str] = ..., gateway_id: _Optional[str] = ..., partition: _Optional[str] = ..., source: _Optional[str] = ..., kv_store_id: _Optional[str] = ...) -> None: ...

class GatewayStatusRequest(_message.Message):
    __slots__ = ("services", "gateway_id", "agent_id", "timestamp", "partition", "source_ip", "kv_store_id", "config_source", "version", "hostname", "os", "arch")
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IP_FIELD_NUMBER: _ClassVar[int]
    KV_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SOURCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[GatewayServiceStatus]
    gateway_id: str
    agent_id: str
    timestamp: int
    partition: str
    source_ip: str
    kv_store_id: str
    config_source: str
    version: str
    hostname: str
    os: str
    arch: str
    def __init__(self, services: _Optional[_Iterable[_Union[GatewayServiceStatus, _Mapping]]] = ..., gateway_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., timestamp: _Optional[int] = ..., partition: _Optional[str] = ..., source_ip: _Optional[str] = ..., kv_store_id: _Optional[str] = ..., config_source: _Optional[str] = ..., version: _Optional[str] = ..., hostname: _Optional[str] = ..., os: _Optional[str] = ..., arch: _Optional[str] = ...) -> None: ...

class GatewayStatusChunk(_message.Message):
    __slots__ = ("services", "gateway_id", "agent_id", "timestamp", "partition", "source_ip", "is_final", "chunk_index", "total_chunks", "kv_store_id", "config_source", "version", "hostname", "os", "arch")
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IP_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    KV_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SOURCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[GatewayServiceStatus]
    gateway_id: str
    agent_id: str
    timestamp: int
    partition: str
    source_ip: str
    is_final: bool
    chunk_index: int
    total_chunks: int
    kv_store_id: str
    config_source: str
    version: str
    hostname: str
    os: str
    arch: str
    def __init__(self, services: _Optional[_Iterable[_Union[GatewayServiceStatus, _Mapping]]] = ..., gateway_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., timestamp: _Optional[int] = ..., partition: _Optional[str] = ..., source_ip: _Optional[str] = ..., is_final: _Optional[bool] = ..., chunk_index: _Optional[int] = ..., total_chunks: _Optional[int] = ..., kv_store_id: _Optional[str] = ..., config_source: _Optional[str] = ..., version: _Optional[str] = ..., hostname: _Optional[str] = ..., os: _Optional[str] = ..., arch: _Optional[str] = ...) -> None: ...

class GatewayStatusResponse(_message.Message):
    __slots__ = ("received",)
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    received: bool
    def __init__(self, received: _Optional[bool] = ...) -> None: ...
