"""The rules for instance ids and for orchestration, activity and event names.

They live below every backend so that an id one backend refuses is refused by all of them
(a test on the in-memory backend must not pass with an id Azure Storage rejects), and they
are checked where the id or name enters: the clients, ``Backend.create_instance`` /
``send_message`` and the orchestrator actions (sub-orchestrations, ``send_event``, activities).

Why each rule (Azure Storage limits; the in-memory backend has none, but follows them):

* An instance id is the PartitionKey of its History and Instances rows: at most 1 KiB, i.e.
  512 UTF-16 code units, after the DTFx key escaping doubles ``^ / \\ # ?`` and control
  characters. ``MAX_INSTANCE_ID_LENGTH`` characters fit in the worst case (every character
  escaped or outside the BMP), so the rule needs no knowledge of the escaping.
* The id is also the folder of its payload blobs (``{id}/message-...``): the URL path
  segments ``.`` and ``..`` are collapsed by HTTP clients and servers, so those ids would
  address other blobs.
* Ids starting with ``$`` are reserved for the engine's own blobs (the poison store is
  ``$poison/`` in the same container: purging an instance named ``$poison`` would delete it).
* Every request carries the id as UTF-8 and the partition is a hash of its UTF-8 bytes, so
  lone surrogates (not encodable) are refused.
* Names (and orchestration versions) are stored in table columns that are never moved to
  blobs (the Instances ``Name`` and ``Version`` are filter columns): a string property holds
  at most 64 KiB, i.e. 32,768 UTF-16 code units; ``MAX_NAME_LENGTH`` characters fit in the
  worst case.
"""

from __future__ import annotations

from durable_azstorage.model.errors import InvalidIdentifierError

MAX_INSTANCE_ID_LENGTH = 256
MAX_NAME_LENGTH = 16_384
RESERVED_PREFIX = "$"
_DOT_SEGMENTS = frozenset({".", ".."})
_SHOWN = 64  # characters of an offending value quoted in the error


def validate_instance_id(instance_id: object, *, what: str = "instance id") -> str:
    """Return ``instance_id`` if it is a valid instance id, else raise ``InvalidIdentifierError``.

    ``what`` names the id in the error (e.g. "sub-orchestration instance id").
    """
    if not isinstance(instance_id, str):
        raise InvalidIdentifierError(f"{what} must be a string, got {type(instance_id).__name__}")
    if not instance_id:
        raise InvalidIdentifierError(f"{what} must be a non-empty string")
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise InvalidIdentifierError(
            f"{what} {_shown(instance_id)} is {len(instance_id)} characters long; the limit is "
            f"{MAX_INSTANCE_ID_LENGTH} (it is an Azure table key, at most 1 KiB)"
        )
    if instance_id in _DOT_SEGMENTS:
        raise InvalidIdentifierError(
            f"{what} {instance_id!r} is not allowed: '.' and '..' are URL path segments and "
            "would address other blobs"
        )
    if instance_id.startswith(RESERVED_PREFIX):
        raise InvalidIdentifierError(
            f"{what} {_shown(instance_id)} starts with {RESERVED_PREFIX!r}, which is reserved "
            "for the engine's own storage (e.g. the '$poison' store)"
        )
    _require_utf8(instance_id, what)
    return instance_id


def validate_name(name: object, *, what: str) -> str:
    """Return ``name`` if it may name an orchestration, activity or event, else raise.

    ``what`` says which kind of name it is (e.g. "activity name"); the error names it.
    """
    if not isinstance(name, str):
        raise InvalidIdentifierError(f"{what} must be a string, got {type(name).__name__}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidIdentifierError(
            f"{what} {_shown(name)} is {len(name)} characters long; the limit is "
            f"{MAX_NAME_LENGTH} (it is stored in a table column, at most 64 KiB)"
        )
    _require_utf8(name, what)
    return name


def _require_utf8(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidIdentifierError(
            f"{what} {_shown(value)} cannot be encoded as UTF-8 ({exc.reason} at position "
            f"{exc.start}): storage requests and the partition hash need UTF-8"
        ) from None


def _shown(value: str) -> str:
    """``value`` quoted, cut to its first characters so an error stays readable."""
    if len(value) <= _SHOWN:
        return repr(value)
    return repr(value[:_SHOWN]) + "..."
