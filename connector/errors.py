"""The one exception tree of ead-connector.

Every error the connector raises on purpose derives from :class:`ConnectorError`. Each class
has a stable machine-readable ``code`` (used in acknowledgements, problem+json bodies and CLI
output) and an ``http_status``; the class docstring is its default message.

::

    ConnectorError                                  500  connector_error
    ├── InvalidMessage (ValueError)                 400  invalid_message
    │   ├── XmlTooLarge                             413  xml_too_large
    │   ├── XmlUnsafe                               400  xml_unsafe
    │   │   ├── XmlDoctypeForbidden                 400  xml_doctype_forbidden
    │   │   ├── XmlProcessingInstructionForbidden   400  xml_processing_instruction_forbidden
    │   │   └── XmlTooDeep                          400  xml_too_deep
    │   ├── XmlEncodingUnsupported                  400  xml_encoding_unsupported
    │   ├── XmlMalformed                            400  xml_malformed
    │   ├── MessageKindUnknown                      400  message_kind_unknown
    │   └── EnvelopeInvalid                         400  envelope_invalid
    ├── UnknownCode (ValueError)                    400  unknown_code
    ├── NotAuthenticated                            401  not_authenticated
    ├── Forbidden                                   403  forbidden
    ├── NotFound                                    404  not_found
    ├── UnsupportedMediaType                        415  unsupported_media_type
    ├── TooManyRequests                             429  too_many_requests
    ├── IllegalTransition                           409  illegal_transition
    ├── StoreUnavailable                            503  store_unavailable
    ├── IntakeUnavailable                           503  intake_unavailable
    ├── SourceUnavailable                           502  source_unavailable
    ├── CustomsUnavailable                          502  customs_unavailable (retried)
    ├── CustomsRefused                              502  customs_refused (not retried)
    ├── ResponseRefused                             400  response_refused
    │   ├── ResponseStale                           400  response_stale
    │   ├── ResponseReplayed                        409  response_replayed
    │   └── ResponseMisdirected                     400  response_misdirected
    ├── ReferralMismatch                            409  referral_mismatch
    ├── WebhookUnavailable                          502  webhook_unavailable (retried)
    ├── WebhookRefused                              502  webhook_refused (not retried)
    ├── ConfigurationError                          500  configuration_invalid
    ├── SignatureInvalid                            400  signature_invalid
    │   └── CertificateUntrusted                    400  certificate_untrusted
    └── SigningKeyUnavailable                       500  signing_key_unavailable

Per-item faults inside an otherwise usable batch are not exceptions: they are reported as
:class:`connector.core.model.ItemError` values so the good items beside them go on.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "CertificateUntrusted",
    "ConfigurationError",
    "ConnectorError",
    "CustomsRefused",
    "CustomsUnavailable",
    "EnvelopeInvalid",
    "Forbidden",
    "IllegalTransition",
    "IntakeUnavailable",
    "InvalidMessage",
    "MessageKindUnknown",
    "NotAuthenticated",
    "NotFound",
    "ReferralMismatch",
    "ResponseMisdirected",
    "ResponseRefused",
    "ResponseReplayed",
    "ResponseStale",
    "SignatureInvalid",
    "SigningKeyUnavailable",
    "SourceUnavailable",
    "StoreUnavailable",
    "TooManyRequests",
    "UnknownCode",
    "UnsupportedMediaType",
    "WebhookRefused",
    "WebhookUnavailable",
    "XmlDoctypeForbidden",
    "XmlEncodingUnsupported",
    "XmlMalformed",
    "XmlProcessingInstructionForbidden",
    "XmlTooDeep",
    "XmlTooLarge",
    "XmlUnsafe",
]


class ConnectorError(Exception):
    """The connector could not complete the operation."""

    code: ClassVar[str] = "connector_error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str | None = None, **context: object) -> None:
        self.message = message or (self.__doc__ or self.code).strip().splitlines()[0]
        self.context = context
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, object]:
        """The error as a JSON-ready mapping with its stable code."""
        return {"code": self.code, "message": self.message, **self.context}


class InvalidMessage(ConnectorError, ValueError):
    """The message cannot be used."""

    code = "invalid_message"
    http_status = 400


class XmlTooLarge(InvalidMessage):
    """The message is larger than the configured limit."""

    code = "xml_too_large"
    http_status = 413


class XmlUnsafe(InvalidMessage):
    """The message uses an XML feature that is not allowed."""

    code = "xml_unsafe"


class XmlDoctypeForbidden(XmlUnsafe):
    """The message contains a DOCTYPE declaration; DTDs and entities are not accepted."""

    code = "xml_doctype_forbidden"


class XmlProcessingInstructionForbidden(XmlUnsafe):
    """The message contains a processing instruction (``<?xml-stylesheet?>`` and the like)."""

    code = "xml_processing_instruction_forbidden"


class XmlTooDeep(XmlUnsafe):
    """The message nests elements deeper than the configured limit."""

    code = "xml_too_deep"


class XmlEncodingUnsupported(InvalidMessage):
    """The message is not encoded in UTF-8."""

    code = "xml_encoding_unsupported"


class XmlMalformed(InvalidMessage):
    """The message is not well-formed XML."""

    code = "xml_malformed"


class MessageKindUnknown(InvalidMessage):
    """The root element does not name a message kind this connector accepts."""

    code = "message_kind_unknown"


class EnvelopeInvalid(InvalidMessage):
    """The batch envelope (header or item list) does not conform to its schema."""

    code = "envelope_invalid"


class UnknownCode(ConnectorError, ValueError):
    """A value is not a member of its closed vocabulary."""

    code = "unknown_code"
    http_status = 400


class NotAuthenticated(ConnectorError):
    """Credentials are missing or not valid."""

    code = "not_authenticated"
    http_status = 401


class Forbidden(ConnectorError):
    """The caller may not act on this resource."""

    code = "forbidden"
    http_status = 403


class NotFound(ConnectorError):
    """No such resource is visible to the caller."""

    code = "not_found"
    http_status = 404


class UnsupportedMediaType(ConnectorError):
    """The request body is not of a media type this route accepts."""

    code = "unsupported_media_type"
    http_status = 415


class TooManyRequests(ConnectorError):
    """Too many requests; try again after the time given in Retry-After."""

    code = "too_many_requests"
    http_status = 429


class IllegalTransition(ConnectorError):
    """The item cannot move to that state from the state it is in."""

    code = "illegal_transition"
    http_status = 409


class StoreUnavailable(ConnectorError):
    """The database cannot be used right now; nothing was stored."""

    code = "store_unavailable"
    http_status = 503


class IntakeUnavailable(ConnectorError):
    """The batch could not be checked right now (an intake worker process stopped); nothing
    was stored: send it again."""

    code = "intake_unavailable"
    http_status = 503


class SourceUnavailable(ConnectorError):
    """An operator's pull source could not be read; its cursor is unchanged."""

    code = "source_unavailable"
    http_status = 502


class CustomsUnavailable(ConnectorError):
    """The Customs system could not take the declaration now; it will be sent again."""

    code = "customs_unavailable"
    http_status = 502


class CustomsRefused(ConnectorError):
    """The Customs system refused the declaration; sending it again would not help."""

    code = "customs_refused"
    http_status = 502


class ResponseRefused(ConnectorError):
    """The Customs response was refused as a whole; none of its decisions was applied."""

    code = "response_refused"
    http_status = 400


class ResponseStale(ResponseRefused):
    """The Customs response was issued too long ago (or too far ahead) to be accepted."""

    code = "response_stale"


class ResponseReplayed(ResponseRefused):
    """A Customs response with this id was already received from this destination."""

    code = "response_replayed"
    http_status = 409


class ResponseMisdirected(ResponseRefused):
    """The Customs response names another destination than the one it came from."""

    code = "response_misdirected"


class ReferralMismatch(ConnectorError):
    """The answer does not match the referral pending on the item."""

    code = "referral_mismatch"
    http_status = 409


class WebhookUnavailable(ConnectorError):
    """The operator's webhook could not take the notice now; it will be sent again."""

    code = "webhook_unavailable"
    http_status = 502


class WebhookRefused(ConnectorError):
    """The operator's webhook refused the notice; sending it again would not help."""

    code = "webhook_refused"
    http_status = 502


class ConfigurationError(ConnectorError):
    """The configuration is invalid."""

    code = "configuration_invalid"
    http_status = 500


class SignatureInvalid(ConnectorError):
    """The XML signature of the message is missing or does not verify."""

    code = "signature_invalid"
    http_status = 400


class CertificateUntrusted(SignatureInvalid):
    """The message is signed with a certificate that is not pinned or not valid now."""

    code = "certificate_untrusted"
    http_status = 400


class SigningKeyUnavailable(ConnectorError):
    """The signing key or its certificate cannot be loaded."""

    code = "signing_key_unavailable"
    http_status = 500
