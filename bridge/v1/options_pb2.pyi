# mypy: disable-error-code="misc"
# ruff: noqa
from google.protobuf import descriptor_pb2 as _descriptor_pb2
from bridge.v1 import envelope_pb2 as _envelope_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    LOW: _ClassVar[Priority]
    NORMAL: _ClassVar[Priority]
    HIGH: _ClassVar[Priority]
PRIORITY_UNSPECIFIED: Priority
LOW: Priority
NORMAL: Priority
HIGH: Priority
FILE_FIELD_NUMBER: _ClassVar[int]
file: _descriptor.FieldDescriptor
SERVICE_FIELD_NUMBER: _ClassVar[int]
service: _descriptor.FieldDescriptor
METHOD_FIELD_NUMBER: _ClassVar[int]
method: _descriptor.FieldDescriptor

class BridgeFileOptions(_message.Message):
    __slots__ = ("encoding", "bare")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    BARE_FIELD_NUMBER: _ClassVar[int]
    encoding: _envelope_pb2.Encoding
    bare: bool
    def __init__(self, encoding: _Optional[_Union[_envelope_pb2.Encoding, str]] = ..., bare: _Optional[bool] = ...) -> None: ...

class BridgeServiceOptions(_message.Message):
    __slots__ = ("encoding", "default_timeout_ms", "default_priority", "bare")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    BARE_FIELD_NUMBER: _ClassVar[int]
    encoding: _envelope_pb2.Encoding
    default_timeout_ms: int
    default_priority: Priority
    bare: bool
    def __init__(self, encoding: _Optional[_Union[_envelope_pb2.Encoding, str]] = ..., default_timeout_ms: _Optional[int] = ..., default_priority: _Optional[_Union[Priority, str]] = ..., bare: _Optional[bool] = ...) -> None: ...

class BridgeMethodOptions(_message.Message):
    __slots__ = ("encoding", "function_name", "default_timeout_ms", "default_priority", "background_only", "bare")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_NAME_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_ONLY_FIELD_NUMBER: _ClassVar[int]
    BARE_FIELD_NUMBER: _ClassVar[int]
    encoding: _envelope_pb2.Encoding
    function_name: str
    default_timeout_ms: int
    default_priority: Priority
    background_only: bool
    bare: bool
    def __init__(self, encoding: _Optional[_Union[_envelope_pb2.Encoding, str]] = ..., function_name: _Optional[str] = ..., default_timeout_ms: _Optional[int] = ..., default_priority: _Optional[_Union[Priority, str]] = ..., background_only: _Optional[bool] = ..., bare: _Optional[bool] = ...) -> None: ...
