"""Makes the emulator's KMS (moto) authorize every call with the key's own policy, as KMS does.

moto evaluates no key policy (it only checks a Deny on DescribeKey). `install_policy_enforcement` wraps
each KMS operation moto implements: the request's access key names the caller (`app.local.principals`),
the operation names the action (`kms:<Operation>`; ReEncrypt is ReEncryptFrom and ReEncryptTo), the key
is the one the request names (Decrypt: the one the ciphertext names), and the request context carries
`kms:EncryptionContext:<k>`, `kms:CallerAccount`, `aws:PrincipalArn` and, for an attested Decrypt, the
`kms:RecipientAttestation:*` keys of the verified document. `app.keypolicy.evaluator` decides; a refusal
is KMS's AccessDeniedException. Before all that, the request's signing time must be within SigV4's
5 minutes (`app.local.request_time`), which moto does not check either. The rehearsal's emulator calls
the same entry point. Local mode only.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from app.keypolicy.evaluator import Caller, Decision, Request, access_denied_message, evaluate
from app.keypolicy.grammar import PolicyGrammarError, parse_policy_text
from app.local.kms_recipient import ACCESS_DENIED, RecipientRefused, RecipientVerifier, verify_recipient
from app.local.principals import by_access_key
from app.local.request_time import check_request_time
from app.shared import logs

log = logging.getLogger(__name__)

NO_KEY_OPERATIONS = frozenset(
    {"CreateKey", "ListKeys", "ListAliases", "GenerateRandom", "ListRetirableGrants"}
)
KEY_PARAMETER = {"CreateAlias": "TargetKeyId", "UpdateAlias": "TargetKeyId", "DeleteAlias": "AliasName"}
POLICY_OPERATIONS = frozenset({"CreateKey", "PutKeyPolicy"})
UNRECOGNIZED_CLIENT = "UnrecognizedClientException"
MALFORMED_POLICY = "MalformedPolicyDocumentException"
_originals: dict[str, Callable[..., Any]] = {}


def install_policy_enforcement(
    root_certificate_der: bytes, *, max_age_s: float = 300.0, callers: Mapping[str, Caller] | None = None
) -> None:
    """Patch moto's KMS in this process (replaces an earlier install). `callers` maps access key ids to
    principals (default: `app.local.principals`); `root_certificate_der` is the attestation root."""
    from moto.core.utils import camelcase_to_underscores  # noqa: PLC0415 - moto is local-mode only
    from moto.kms.responses import KmsResponse  # noqa: PLC0415

    uninstall_policy_enforcement()
    verifier = RecipientVerifier(root_certificate_der, max_age_s)
    table = dict(by_access_key() if callers is None else callers)
    for operation in _kms_operations():
        name = camelcase_to_underscores(operation)
        original = getattr(KmsResponse, name, None)
        if original is not None:
            _originals[name] = original
            setattr(KmsResponse, name, _guarded(operation, original, verifier, table))


def uninstall_policy_enforcement() -> None:
    """Give moto its own KMS operations back."""
    from moto.kms.responses import KmsResponse  # noqa: PLC0415 - moto is local-mode only

    while _originals:
        name, original = _originals.popitem()
        setattr(KmsResponse, name, original)


def _kms_operations() -> list[str]:
    import botocore.session  # noqa: PLC0415 - only when installing

    return list(botocore.session.get_session().get_service_model("kms").operation_names)


def _guarded(
    operation: str, original: Callable[[Any], Any], verifier: RecipientVerifier, callers: Mapping[str, Caller]
) -> Callable[[Any], Any]:
    def method(response: Any) -> Any:
        from moto.core.exceptions import JsonRESTError  # noqa: PLC0415 - moto is local-mode only

        try:
            return _call(response, operation, original, verifier, callers)
        except RecipientRefused as refused:
            raise JsonRESTError(refused.code, refused.message) from refused

    return method


def _call(
    response: Any,
    operation: str,
    original: Callable[[Any], Any],
    verifier: RecipientVerifier,
    callers: Mapping[str, Caller],
) -> Any:
    check_request_time(response.headers)
    caller = callers.get(response.get_access_key())
    if caller is None:
        raise RecipientRefused(UNRECOGNIZED_CLIENT, "The security token included in the request is invalid.")
    params = json.loads(response.body or "{}")
    if operation in POLICY_OPERATIONS and params.get("Policy") is not None:
        _check_grammar(params["Policy"])
    if operation == "Decrypt":
        return _decrypt(response, params, caller, original, verifier)
    for request, policy in _requests(response.kms_backend, operation, params, caller):
        _authorize(policy, request)
    return original(response)


def _decrypt(
    response: Any,
    params: Mapping[str, Any],
    caller: Caller,
    original: Callable[[Any], Any],
    verifier: RecipientVerifier,
) -> Any:
    recipient = params.get("Recipient")
    verified = verify_recipient(recipient, verifier) if recipient is not None else None
    attested = verified.context() if verified is not None else {}
    key = _find_key(response.kms_backend, params.get("KeyId") or _key_id_in(params.get("CiphertextBlob")))
    if key is not None:  # an unknown key or a malformed blob: moto answers NotFound / InvalidCiphertext
        context = {**_context(caller, params.get("EncryptionContext")), **attested}
        _authorize(key.policy, Request(caller, "kms:Decrypt", key.arn, context))
    answer = original(response)
    if verified is None:
        return answer  # allowed without attestation: KMS answers with Plaintext, and so do we
    body = json.loads(answer)
    wrapped = verified.wrap(base64.b64decode(body.pop("Plaintext")))
    return json.dumps(
        {
            "CiphertextForRecipient": base64.b64encode(wrapped).decode("ascii"),
            "KeyId": body["KeyId"],
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }
    )


def _requests(
    backend: Any, operation: str, params: Mapping[str, Any], caller: Caller
) -> Iterator[tuple[Request, str | None]]:
    if operation in NO_KEY_OPERATIONS:
        yield Request(caller, f"kms:{operation}", "*", _context(caller, None)), None
        return
    if operation == "ReEncrypt":
        source = _find_key(backend, params.get("SourceKeyId") or _key_id_in(params.get("CiphertextBlob")))
        target = _find_key(backend, params.get("DestinationKeyId"))
        for key, action, context in (
            (source, "kms:ReEncryptFrom", params.get("SourceEncryptionContext")),
            (target, "kms:ReEncryptTo", params.get("DestinationEncryptionContext")),
        ):
            if key is not None:
                yield Request(caller, action, key.arn, _context(caller, context)), key.policy
        return
    key = _find_key(backend, params.get(KEY_PARAMETER.get(operation, "KeyId")))
    if key is not None:  # no such key: moto's own NotFound answer is what KMS says too
        yield (
            Request(caller, f"kms:{operation}", key.arn, _context(caller, params.get("EncryptionContext"))),
            key.policy,
        )


def _authorize(policy_text: str | None, request: Request) -> Decision:
    try:
        policy = json.loads(policy_text) if policy_text else None
        decision = evaluate(policy, request)
    except (json.JSONDecodeError, PolicyGrammarError) as error:  # fail closed on a policy we cannot read
        raise RecipientRefused(
            ACCESS_DENIED, f"the key policy cannot be evaluated locally: {error}"
        ) from error
    fields = logs.fields(
        action=request.action,
        caller=request.caller.arn,
        allowed=decision.allowed,
        statement=decision.statement,
    )
    log.log(logging.DEBUG if decision.allowed else logging.INFO, "kms policy decision", extra=fields)
    if not decision.allowed:
        raise RecipientRefused(ACCESS_DENIED, access_denied_message(decision, request))
    return decision


def _check_grammar(policy: Any) -> None:
    try:
        parse_policy_text(str(policy))
    except PolicyGrammarError as error:
        raise RecipientRefused(MALFORMED_POLICY, str(error)) from error


def _context(caller: Caller, encryption_context: Any) -> dict[str, str]:
    context = {"kms:CallerAccount": caller.account}
    if caller.principal_arns:
        context["aws:PrincipalArn"] = sorted(caller.principal_arns)[0]
    if isinstance(encryption_context, Mapping):
        context.update({f"kms:EncryptionContext:{k}": str(v) for k, v in encryption_context.items()})
    return context


def _find_key(backend: Any, ref: Any) -> Any:
    """moto's Key for a key id, key ARN, alias name or alias ARN; None if there is none."""
    if not isinstance(ref, str) or not ref:
        return None
    name = backend.get_alias_name(ref)
    key_id = backend.get_key_id_from_alias(name) if name.startswith("alias/") else backend.get_key_id(ref)
    return backend.keys.get(key_id) if key_id is not None else None


def _key_id_in(blob: Any) -> str | None:
    """The key id moto writes at the head of its ciphertext blobs (moto/kms/utils.py: KEY_ID_LEN bytes)."""
    from moto.kms.utils import KEY_ID_LEN  # noqa: PLC0415 - moto is local-mode only

    if not isinstance(blob, str):
        return None
    try:
        return base64.b64decode(blob, validate=True)[:KEY_ID_LEN].decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
