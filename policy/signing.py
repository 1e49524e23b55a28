"""The signature on `hotplug-guard.io/request`: proof that the webhook admitted the request.

The companion controller migrates a VM because of this annotation, and more paths
than the webhook can write a VM's annotations (a VirtualMachinePool copies its
template's, a VirtualMachineRestore applies patches). So the webhook signs each
request with HMAC-SHA256 under a key only it and the controller hold, and the
controller acts on a request only if `verify_request` returns it.

The signed message is the concatenation of netstrings (`<length>:<bytes>,`, the
length in decimal of the UTF-8 bytes) of, in this order:

    "hotplug-guard.io/request/v1", VM uid, VM namespace, VM name,
    generation (decimal), request id, plug names, unplug names

where each name list is itself one netstring holding the netstrings of its names
in order. The signature is `v1:` followed by the unpadded base64url of the MAC.

What it covers, and why:
- uid, namespace and name: a request verifies on the VM it was made for only, not
  on another VM, nor on a VM re-created under the same name;
- the generation the change gets when it is stored (the old object's generation
  plus one: kube-apiserver increments it for a changed spec after the mutating
  and before the validating webhooks, so both sign the same number): two requests
  with equal content at different times differ, so a controller that remembers
  the last generation it handled can refuse an older request written back;
- the id (a hash of the uid and the resulting interface set) and the plug and
  unplug names: `verify_request` also checks that the id is the one of the VM's
  interfaces now, so a request cannot be moved onto another change.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any, Final, final

from policy.annotations import HotplugRequest, parse_request, request_id
from policy.values import Value
from policy.views import parse_vm

SCHEME = "v1"
DOMAIN = "hotplug-guard.io/request/v1"
MIN_KEY_BYTES = 32
"""HMAC-SHA256 keys shorter than its 32-byte output only weaken it."""
BLOCK_BYTES = 64
"""SHA-256's block size: HMAC pads (or first hashes) each key to it (RFC 2104)."""
_INNER_PAD: Final = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD: Final = bytes(byte ^ 0x5C for byte in range(256))
_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")


class InvalidKey(ValueError):
    """A signing key is unusable (too short)."""


@final
class SigningKeys(Value):
    """The key that signs requests, and further keys that are accepted when verifying
    (the previous or the next key while a rotation rolls out).
    """

    FIELDS = ("signing", "accepted")

    def __init__(self, *, signing: bytes, accepted: tuple[bytes, ...] = ()) -> None:
        for key in (signing, *accepted):
            if len(key) < MIN_KEY_BYTES:
                raise InvalidKey(
                    f"a signing key must have at least {MIN_KEY_BYTES} bytes, got {len(key)}"
                )
        self.signing: Final = signing
        self.accepted: Final = accepted

    @property
    def verifying(self) -> tuple[bytes, ...]:
        """Every key a valid signature may have been made with."""
        return (self.signing, *self.accepted)

    def __repr__(self) -> str:  # never print key material
        return f"SigningKeys(<{1 + len(self.accepted)} keys>)"


def request_message(request: HotplugRequest, *, uid: str, namespace: str, name: str) -> bytes:
    """The bytes the signature is computed over (see the module docstring)."""
    fields = (
        _netstring(_utf8(DOMAIN)),
        _netstring(_utf8(uid)),
        _netstring(_utf8(namespace)),
        _netstring(_utf8(name)),
        _netstring(_utf8(str(request.generation))),
        _netstring(_utf8(request.id)),
        _netstring(b"".join(_netstring(_utf8(n)) for n in request.plug)),
        _netstring(b"".join(_netstring(_utf8(n)) for n in request.unplug)),
    )
    return b"".join(fields)


def sign_request(
    request: HotplugRequest, *, uid: str, namespace: str, name: str, key: bytes
) -> HotplugRequest:
    """`request` carrying its signature for the VM with this uid, namespace and name."""
    return HotplugRequest(
        id=request.id,
        plug=request.plug,
        unplug=request.unplug,
        generation=request.generation,
        signature=_signature(
            request_message(request, uid=uid, namespace=namespace, name=name), key
        ),
    )


def signature_valid(
    request: HotplugRequest, *, uid: str, namespace: str, name: str, keys: Iterable[bytes]
) -> bool:
    """True when `request.signature` was made by one of `keys` for this VM identity."""
    given = request.signature
    if not given.isascii():
        return False
    message = request_message(request, uid=uid, namespace=namespace, name=name)
    valid = False
    for key in keys:  # every key is tried, so timing does not tell which one matched
        valid |= hmac.compare_digest(_signature(message, key).encode(), given.encode())
    return valid


def verify_request(
    annotation_value: object, vm: Mapping[str, Any], keys: Iterable[bytes]
) -> HotplugRequest | None:
    """The request in `annotation_value` if the webhook admitted it for `vm` as it is now.

    `vm` is the VirtualMachine object (its own `metadata.annotations` hold the value);
    `keys` the signing key and any accepted ones. None unless the value parses, its
    signature is valid for the VM's uid, namespace and name, its id is the id of
    the VM's current interfaces (or of those plus the interfaces it unplugged, which
    KubeVirt removes from the VM once the unplug completed), and its generation is
    not ahead of the VM's.
    """
    request = parse_request(annotation_value)
    if request is None or not request.signature:
        return None
    view = parse_vm(vm)
    if not view.uid or request.generation > view.generation:
        return None
    if not signature_valid(
        request, uid=view.uid, namespace=view.namespace, name=view.name, keys=keys
    ):
        return None
    interfaces = [(iface.name, iface.absent) for iface in view.spec.interfaces]
    if request.id == request_id(view.uid, interfaces):
        return request
    # KubeVirt removes an unplugged interface (and its network) from the VM once the
    # unplug completed; the interfaces are then those of the change less those it
    # unplugged, which the signature names.
    present = {name for name, _ in interfaces}
    cleared = [(name, True) for name in request.unplug if name not in present]
    if cleared and request.id == request_id(view.uid, interfaces + cleared):
        return request
    return None


def _signature(message: bytes, key: bytes) -> str:
    """HMAC-SHA256 of `message` under `key` (`hmac.new(key, message, sha256)`), as text."""
    inner_pad, outer_pad = _pads(key)
    inner = inner_pad.copy()
    inner.update(message)
    outer = outer_pad.copy()
    outer.update(inner.digest())
    mac = binascii.b2a_base64(outer.digest(), newline=False).rstrip(b"=").translate(_URLSAFE)
    return f"{SCHEME}:{mac.decode('ascii')}"


@functools.lru_cache(maxsize=8)
def _pads(key: bytes) -> tuple[Any, Any]:
    """The SHA-256 states after HMAC's inner and outer padded key (RFC 2104, section 2).

    Every signature under a key starts from these two states, so they are hashed once
    per key (a few keys per process: the signing key and those a rotation accepts) and
    copied for each signature: half of `hmac.new`'s work, most of it OpenSSL setting up.
    """
    if len(key) > BLOCK_BYTES:
        key = hashlib.sha256(key).digest()
    padded = key.ljust(BLOCK_BYTES, b"\0")
    return hashlib.sha256(padded.translate(_INNER_PAD)), hashlib.sha256(
        padded.translate(_OUTER_PAD)
    )


def _utf8(text: str) -> bytes:
    # JSON can carry lone surrogates (`"\\ud800"`); they are encoded as such rather than
    # raising, so that no input makes signing fail
    return text.encode("utf-8", "surrogatepass")


def _netstring(data: bytes) -> bytes:
    return b"%d:%s," % (len(data), data)
