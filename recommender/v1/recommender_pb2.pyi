import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_CLICK: _ClassVar[EventType]
    EVENT_TYPE_IMPRESSION: _ClassVar[EventType]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_CLICK: EventType
EVENT_TYPE_IMPRESSION: EventType

class Item(_message.Message):
    __slots__ = ("article_id", "score", "title", "url", "sections", "tags", "published_at", "explanation")
    ARTICLE_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    article_id: str
    score: float
    title: str
    url: str
    sections: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    published_at: _timestamp_pb2.Timestamp
    explanation: Explanation
    def __init__(self, article_id: _Optional[str] = ..., score: _Optional[float] = ..., title: _Optional[str] = ..., url: _Optional[str] = ..., sections: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., explanation: _Optional[_Union[Explanation, _Mapping]] = ...) -> None: ...

class SharedTerm(_message.Message):
    __slots__ = ("term", "weight")
    TERM_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    term: str
    weight: float
    def __init__(self, term: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("source", "pinned_by", "tfidf", "lsa", "embedding", "tfidf_share", "lsa_share", "embedding_share", "recency", "shared_terms", "window", "clicks", "impressions", "exposure", "earlier_clicks", "velocity")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PINNED_BY_FIELD_NUMBER: _ClassVar[int]
    TFIDF_FIELD_NUMBER: _ClassVar[int]
    LSA_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    TFIDF_SHARE_FIELD_NUMBER: _ClassVar[int]
    LSA_SHARE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_SHARE_FIELD_NUMBER: _ClassVar[int]
    RECENCY_FIELD_NUMBER: _ClassVar[int]
    SHARED_TERMS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    CLICKS_FIELD_NUMBER: _ClassVar[int]
    IMPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    EXPOSURE_FIELD_NUMBER: _ClassVar[int]
    EARLIER_CLICKS_FIELD_NUMBER: _ClassVar[int]
    VELOCITY_FIELD_NUMBER: _ClassVar[int]
    source: str
    pinned_by: str
    tfidf: float
    lsa: float
    embedding: float
    tfidf_share: float
    lsa_share: float
    embedding_share: float
    recency: float
    shared_terms: _containers.RepeatedCompositeFieldContainer[SharedTerm]
    window: str
    clicks: float
    impressions: float
    exposure: float
    earlier_clicks: float
    velocity: float
    def __init__(self, source: _Optional[str] = ..., pinned_by: _Optional[str] = ..., tfidf: _Optional[float] = ..., lsa: _Optional[float] = ..., embedding: _Optional[float] = ..., tfidf_share: _Optional[float] = ..., lsa_share: _Optional[float] = ..., embedding_share: _Optional[float] = ..., recency: _Optional[float] = ..., shared_terms: _Optional[_Iterable[_Union[SharedTerm, _Mapping]]] = ..., window: _Optional[str] = ..., clicks: _Optional[float] = ..., impressions: _Optional[float] = ..., exposure: _Optional[float] = ..., earlier_clicks: _Optional[float] = ..., velocity: _Optional[float] = ...) -> None: ...

class GetRelatedRequest(_message.Message):
    __slots__ = ("article_id", "limit", "exclude_ids", "section", "explain")
    ARTICLE_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_IDS_FIELD_NUMBER: _ClassVar[int]
    SECTION_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    article_id: str
    limit: int
    exclude_ids: _containers.RepeatedScalarFieldContainer[str]
    section: str
    explain: bool
    def __init__(self, article_id: _Optional[str] = ..., limit: _Optional[int] = ..., exclude_ids: _Optional[_Iterable[str]] = ..., section: _Optional[str] = ..., explain: _Optional[bool] = ...) -> None: ...

class GetRelatedResponse(_message.Message):
    __slots__ = ("items", "model_version")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    model_version: str
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class GetPopularRequest(_message.Message):
    __slots__ = ("section", "limit", "exclude_ids", "window", "explain")
    SECTION_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_IDS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    section: str
    limit: int
    exclude_ids: _containers.RepeatedScalarFieldContainer[str]
    window: str
    explain: bool
    def __init__(self, section: _Optional[str] = ..., limit: _Optional[int] = ..., exclude_ids: _Optional[_Iterable[str]] = ..., window: _Optional[str] = ..., explain: _Optional[bool] = ...) -> None: ...

class GetPopularResponse(_message.Message):
    __slots__ = ("items", "model_version", "as_of", "window")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    model_version: str
    as_of: _timestamp_pb2.Timestamp
    window: str
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., model_version: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window: _Optional[str] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("model_version", "trained_at", "article_count", "click_count", "parameters", "sections", "popular_windows")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRAINED_AT_FIELD_NUMBER: _ClassVar[int]
    ARTICLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CLICK_COUNT_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    POPULAR_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    trained_at: _timestamp_pb2.Timestamp
    article_count: int
    click_count: int
    parameters: _containers.ScalarMap[str, str]
    sections: _containers.RepeatedScalarFieldContainer[str]
    popular_windows: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model_version: _Optional[str] = ..., trained_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., article_count: _Optional[int] = ..., click_count: _Optional[int] = ..., parameters: _Optional[_Mapping[str, str]] = ..., sections: _Optional[_Iterable[str]] = ..., popular_windows: _Optional[_Iterable[str]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("article_id", "type", "ts", "session_id")
    ARTICLE_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    article_id: str
    type: EventType
    ts: _timestamp_pb2.Timestamp
    session_id: str
    def __init__(self, article_id: _Optional[str] = ..., type: _Optional[_Union[EventType, str]] = ..., ts: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., session_id: _Optional[str] = ...) -> None: ...

class RecordEventsRequest(_message.Message):
    __slots__ = ("events", "batch_id")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    batch_id: str
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., batch_id: _Optional[str] = ...) -> None: ...

class RejectedEvent(_message.Message):
    __slots__ = ("message", "index", "reason")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    message: int
    index: int
    reason: str
    def __init__(self, message: _Optional[int] = ..., index: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class RecordEventsResponse(_message.Message):
    __slots__ = ("accepted", "deduplicated", "rejected", "rejected_reasons", "rejected_events", "replayed_batches")
    class RejectedReasonsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_REASONS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_BATCHES_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    deduplicated: int
    rejected: int
    rejected_reasons: _containers.ScalarMap[str, int]
    rejected_events: _containers.RepeatedCompositeFieldContainer[RejectedEvent]
    replayed_batches: int
    def __init__(self, accepted: _Optional[int] = ..., deduplicated: _Optional[int] = ..., rejected: _Optional[int] = ..., rejected_reasons: _Optional[_Mapping[str, int]] = ..., rejected_events: _Optional[_Iterable[_Union[RejectedEvent, _Mapping]]] = ..., replayed_batches: _Optional[int] = ...) -> None: ...

class ArticleInput(_message.Message):
    __slots__ = ("article_id", "title", "body", "sections", "tags", "url", "published_at")
    ARTICLE_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    article_id: str
    title: str
    body: str
    sections: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    url: str
    published_at: _timestamp_pb2.Timestamp
    def __init__(self, article_id: _Optional[str] = ..., title: _Optional[str] = ..., body: _Optional[str] = ..., sections: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., url: _Optional[str] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpsertArticlesRequest(_message.Message):
    __slots__ = ("articles",)
    ARTICLES_FIELD_NUMBER: _ClassVar[int]
    articles: _containers.RepeatedCompositeFieldContainer[ArticleInput]
    def __init__(self, articles: _Optional[_Iterable[_Union[ArticleInput, _Mapping]]] = ...) -> None: ...

class UpsertResult(_message.Message):
    __slots__ = ("article_id", "created", "related_count", "inserted_into")
    ARTICLE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    RELATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    INSERTED_INTO_FIELD_NUMBER: _ClassVar[int]
    article_id: str
    created: bool
    related_count: int
    inserted_into: int
    def __init__(self, article_id: _Optional[str] = ..., created: _Optional[bool] = ..., related_count: _Optional[int] = ..., inserted_into: _Optional[int] = ...) -> None: ...

class UpsertArticlesResponse(_message.Message):
    __slots__ = ("results", "model_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[UpsertResult]
    model_version: str
    def __init__(self, results: _Optional[_Iterable[_Union[UpsertResult, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class DeleteArticleRequest(_message.Message):
    __slots__ = ("article_id",)
    ARTICLE_ID_FIELD_NUMBER: _ClassVar[int]
    article_id: str
    def __init__(self, article_id: _Optional[str] = ...) -> None: ...

class DeleteArticleResponse(_message.Message):
    __slots__ = ("existed",)
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    existed: bool
    def __init__(self, existed: _Optional[bool] = ...) -> None: ...

class PinArticleRequest(_message.Message):
    __slots__ = ("article_id", "position", "related_to", "popular_section", "expires_at", "note")
    ARTICLE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    RELATED_TO_FIELD_NUMBER: _ClassVar[int]
    POPULAR_SECTION_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    article_id: str
    position: int
    related_to: str
    popular_section: str
    expires_at: _timestamp_pb2.Timestamp
    note: str
    def __init__(self, article_id: _Optional[str] = ..., position: _Optional[int] = ..., related_to: _Optional[str] = ..., popular_section: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., note: _Optional[str] = ...) -> None: ...

class BlockArticleRequest(_message.Message):
    __slots__ = ("article_id", "tag", "section", "beside_article_id", "beside_section", "expires_at", "note")
    ARTICLE_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    SECTION_FIELD_NUMBER: _ClassVar[int]
    BESIDE_ARTICLE_ID_FIELD_NUMBER: _ClassVar[int]
    BESIDE_SECTION_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    article_id: str
    tag: str
    section: str
    beside_article_id: str
    beside_section: str
    expires_at: _timestamp_pb2.Timestamp
    note: str
    def __init__(self, article_id: _Optional[str] = ..., tag: _Optional[str] = ..., section: _Optional[str] = ..., beside_article_id: _Optional[str] = ..., beside_section: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., note: _Optional[str] = ...) -> None: ...

class RuleResponse(_message.Message):
    __slots__ = ("rule_id",)
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    def __init__(self, rule_id: _Optional[str] = ...) -> None: ...

class Rule(_message.Message):
    __slots__ = ("rule_id", "created_at", "created_by", "pin", "block")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    pin: PinArticleRequest
    block: BlockArticleRequest
    def __init__(self, rule_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., pin: _Optional[_Union[PinArticleRequest, _Mapping]] = ..., block: _Optional[_Union[BlockArticleRequest, _Mapping]] = ...) -> None: ...

class ListRulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRulesResponse(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[Rule]
    def __init__(self, rules: _Optional[_Iterable[_Union[Rule, _Mapping]]] = ...) -> None: ...

class RemoveRuleRequest(_message.Message):
    __slots__ = ("rule_id",)
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    def __init__(self, rule_id: _Optional[str] = ...) -> None: ...

class RemoveRuleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
